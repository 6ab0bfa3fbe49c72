"""Which video encoders actually work on this node: each is opened and made to encode frames.

Looking a codec up is not enough: NVENC is compiled into the libraries everywhere but only
opens where an NVIDIA card with NVENC is present (data-centre cards such as H100 have none).
"""

from __future__ import annotations

import logging
from fractions import Fraction
from functools import cache
from typing import cast

import av

log = logging.getLogger(__name__)

CPU_ENCODERS = ("libx264", "libx265")
GPU_ENCODERS = ("h264_nvenc", "hevc_nvenc")
PROBE_SIZE = (256, 144)  # NVENC's minimum frame size is 145x49; small keeps the probe quick


def encoder_works(name: str) -> bool:
    try:
        ctx = cast(av.VideoCodecContext, av.CodecContext.create(name, "w"))
        ctx.width, ctx.height = PROBE_SIZE
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = Fraction(1, 25)
        ctx.framerate = Fraction(25, 1)
        if name == "libx265":
            ctx.options = {"x265-params": "log-level=error"}
        ctx.open()
        packets = []
        for i in range(3):
            frame = av.VideoFrame(*PROBE_SIZE, "yuv420p")
            frame.pts = i
            packets.extend(ctx.encode(frame))
        packets.extend(ctx.encode(None))
        return bool(packets)
    except (av.FFmpegError, ValueError, OSError) as exc:
        log.info("encoder unavailable", extra={"encoder": name, "reason": str(exc)})
        return False


@cache
def working_encoders() -> tuple[str, ...]:
    return tuple(name for name in (*GPU_ENCODERS, *CPU_ENCODERS) if encoder_works(name))


def has_nvenc() -> bool:
    return any(name in working_encoders() for name in GPU_ENCODERS)
