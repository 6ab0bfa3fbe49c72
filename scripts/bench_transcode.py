"""`make bench-transcode`: encoding speed against the ffmpeg CLI, smart cut against copy.

On the benchmark's 60 s 1080p25 recording (local files, so only encoding is measured):
frames/s of our full transcode and of `ffmpeg` with the same encoder, preset and CRF; and a
frame-accurate H.264 export (smart cut: only the partial GOPs at the ends re-encoded) against
a plain stream copy of the same range. Ratios are printed from the same run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.bench_export import cached_recording, ffmpeg_reading
from scripts.samples import SampleSpec
from tasks.exports.spec import ExportType
from tasks.platform.settings import Settings
from workers.archive.playlists import covering, parse_playlist
from workers.media.encoder_probe import has_nvenc
from workers.media.remux import remux
from workers.media.timeline import SegmentInput
from workers.media.transcode import transcode


def inputs(folder: Path, start_s: float, end_s: float) -> tuple[list[SegmentInput], float, float]:
    segments = parse_playlist((folder / "index.m3u8").read_text(), "r/index.m3u8", "r")
    start, end = segments[0].start_ms + start_s * 1000, segments[0].start_ms + end_s * 1000
    chosen = covering(segments, start, end)
    return [SegmentInput(s, folder / Path(s.key).name) for s in chosen], start, end


def median_time(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def ffmpeg_encode(folder: Path, encoder: str, preset: str, quality: list[str], out: Path) -> None:
    command = [
        *ffmpeg_reading(folder),
        "-c:v",
        encoder,
        "-preset",
        preset,
        *quality,
        "-g",
        "50",
        "-c:a",
        "copy",
        str(out),
    ]
    subprocess.run(command, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--encoder", default="libx264", choices=["libx264", "libx265", "h264_nvenc", "hevc_nvenc"]
    )
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    spec = SampleSpec(seconds=60, width=1920, height=1080, bit_rate=4_000_000, noise=True)
    folder, out = cached_recording("1080p-60s", spec), Path(".bench")
    gpu = args.encoder.endswith("nvenc")
    if gpu and not has_nvenc():
        print("bench: no working NVENC on this node")
        return 1
    export_type = ExportType.H264 if "264" in args.encoder else ExportType.H265
    preset = "p4" if gpu else args.preset
    settings = Settings(encode_preset=preset, encode_crf=26)
    quality = ["-cq", "26"] if gpu else ["-crf", "26"]
    frames = round(spec.seconds * spec.fps)

    def ours() -> object:
        clip, start, end = inputs(folder, 0, 60)
        return transcode(clip, start, end, out / "ours.mp4", export_type, settings, allow_smart_cut=False)

    ours_s = median_time(ours, 1)
    ffmpeg_s = median_time(
        lambda: ffmpeg_encode(folder, args.encoder, preset, quality, out / "ffmpeg.mp4"), 1
    )
    print(
        f"bench: full transcode {args.encoder} {preset}: ours {frames / ours_s:6.1f} fps, "
        f"ffmpeg {frames / ffmpeg_s:6.1f} fps, ratio {ffmpeg_s / ours_s:.2f}x (target >= 0.95x)"
    )

    def smart() -> object:
        clip, start, end = inputs(folder, 0.7, 59.3)
        return transcode(clip, start, end, out / "smart.mp4", ExportType.H264, settings)

    def copy() -> object:
        clip, start, end = inputs(folder, 0.7, 59.3)
        return remux(clip, start, end, out / "copy.mp4", edit_list=True)

    smart_s, copy_s = median_time(smart, args.rounds), median_time(copy, args.rounds)
    print(
        f"bench: frame-accurate smart cut {smart_s:6.2f} s vs stream copy {copy_s:6.2f} s, "
        f"ratio {smart_s / copy_s:.2f}x (target <= 2x)  (median of {args.rounds})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
