"""Test helpers that read media back: which source frames a file holds, and A/V sync."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import av

from scripts.samples import click_onsets, picture_times, read_frame_index


def frame_indices(path: Path | str) -> list[int]:
    """Source frame indices of every picture, in presentation order."""
    times = picture_times(path)
    return [index for index, _ in sorted(times.items(), key=lambda kv: kv[1])]


def shown_indices(path: Path | str) -> list[int]:
    """Source frame index of every picture decoded, in presentation order, repeats included
    (frame_indices keeps one per index, so it cannot see a picture shown twice)."""
    with av.open(str(path)) as container:
        pictures = [(f.pts, read_frame_index(f)) for f in container.decode(video=0) if f.pts is not None]
    return [index for _, index in sorted(pictures)]


def first_frame_index(path: Path | str) -> int:
    with av.open(str(path)) as container:
        return read_frame_index(next(container.decode(video=0)))


def sync_error_s(path: Path | str, fps: int) -> float:
    """Largest distance between an audio click and the picture of the same whole second."""
    times = picture_times(path)
    shown_until = max(times.values()) + 1 / fps
    worst = 0.0
    matched = 0
    for onset in click_onsets(path):
        if onset >= shown_until - 0.5 / fps:
            continue  # a click after the last picture has no picture to be in sync with
        # the picture shown at the click's instant must be a whole-second frame
        candidates = [t for i, t in times.items() if i % fps == 0]
        nearest = min(candidates, key=lambda t: abs(t - onset))
        worst = max(worst, abs(nearest - onset))
        matched += 1
    assert matched, "no audio clicks found"
    return worst


def ffprobe(path: Path | str) -> dict:
    """ffprobe's view of a file: an independent decoder from the one the service uses."""
    exe = shutil.which("ffprobe")
    assert exe, "ffprobe is installed by scripts/bootstrap.sh"
    out = subprocess.run(
        [exe, "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def ffmpeg_decode_errors(path: Path | str) -> str:
    """What ffmpeg complains about while decoding every frame; empty when the file is clean."""
    exe = shutil.which("ffmpeg")
    assert exe
    out = subprocess.run(
        # -enc_time_base -1: frames keep the file's own time base, so variable frame rate is not
        # reported as the null muxer's rounding onto a constant-rate grid
        [exe, "-v", "error", "-i", str(path), "-enc_time_base", "-1", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stderr.strip() + ("" if out.returncode == 0 else f" (exit {out.returncode})")


def moov_before_mdat(path: Path | str) -> bool:
    data = Path(path).read_bytes()
    return 0 <= data.find(b"moov") < data.find(b"mdat")
