"""Checking a spliced (smart-cut) file before it is delivered: it must decode, frame for frame."""

from __future__ import annotations

import logging
from pathlib import Path

import av

log = logging.getLogger(__name__)


def decodes_cleanly(path: Path, expected_frames: int) -> bool:
    """Every picture decodes and there are exactly as many as were written."""
    frames = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for _ in container.decode(stream):
                frames += 1
    except av.FFmpegError as exc:
        log.warning("spliced clip does not decode", extra={"reason": str(exc)})
        return False
    if frames != expected_frames:
        log.warning(
            "spliced clip decodes to the wrong frame count",
            extra={"decoded": frames, "written": expected_frames},
        )
    return frames == expected_frames
