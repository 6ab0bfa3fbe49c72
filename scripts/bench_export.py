"""`make bench`: export speed against the floor, and worker memory against clip length.

Speed: a 60 s 1080p25 ~4 Mbit/s H.264+AAC recording in S3 (moto's server over HTTP unless
RESOURCED_S3_ENDPOINT_URL is set). In one run it times our whole export (index, download,
remux, thumbnail, upload) and the floor — `ffmpeg -c copy` on the same local segments plus a
raw S3 GET of every segment and a PUT of an object the size of the result — and prints the
ratio. AES-128: the same export from the same recording with every segment encrypted (one key,
explicit IV), timed in the same run as the clear one: what decryption costs. Memory: peak RSS
of a process exporting 1 min and 30 min of a recording, to show it stays flat in clip length.
Generated media is cached in .bench/ (never committed).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3

from scripts import devstack
from scripts.samples import SampleSpec, generate_recording
from tasks.exports.spec import ExportSpec, ExportType, S3Location
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from workers.jobs.export_pipeline import run_export
from workers.jobs.fencing import NO_JOB_FENCE

PDT_MS = 1_700_000_000_000
CACHE = Path(".bench")


def cached_recording(name: str, spec: SampleSpec) -> Path:
    folder = CACHE / name
    if not (folder / "index.m3u8").exists():
        shutil.rmtree(folder, ignore_errors=True)
        started = time.monotonic()
        print(f"bench: generating {name} ({spec.seconds:.0f} s {spec.width}x{spec.height}) ...", flush=True)
        generate_recording(folder, spec)
        print(f"bench: generated in {time.monotonic() - started:.0f} s", flush=True)
    return folder


def upload(s3: object, folder: Path, prefix: str) -> int:
    size = 0
    for path in sorted(folder.iterdir()):
        if path.suffix in {".ts", ".m3u8"}:
            s3.upload_file(str(path), "bench-archive", f"{prefix}/{path.name}")  # type: ignore[attr-defined]
            size += path.stat().st_size
    return size


def export_spec(prefix: str, seconds: float) -> ExportSpec:
    return ExportSpec(
        user="bench",
        source=S3Location("bench-archive", "us-east-1"),
        live_path=prefix,
        start_ms=PDT_MS,
        duration_ms=int(seconds * 1000),
        export_type=ExportType.COPY,
        destination=S3Location("bench-exports", "us-east-1", f"out/{prefix}"),
        video_name="clip.mp4",
    )


def ffmpeg_reading(folder: Path) -> list[str]:
    """The ffmpeg CLI reading the recording's own playlist: the baseline's input side."""
    return ["ffmpeg", "-v", "error", "-y", "-allowed_extensions", "ALL", "-i", str(folder / "index.m3u8")]


def time_ffmpeg_copy(folder: Path, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run([*ffmpeg_reading(folder), "-c", "copy", "-movflags", "+faststart", str(out)], check=True)
    return time.perf_counter() - started


def time_raw_s3(
    s3: object, prefix: str, folder: Path, result_size: int, scratch: Path
) -> tuple[float, float]:
    started = time.perf_counter()
    for path in sorted(folder.glob("*.ts")):
        body = s3.get_object(Bucket="bench-archive", Key=f"{prefix}/{path.name}")["Body"]  # type: ignore[attr-defined]
        while body.read(1 << 20):
            pass
    get_s = time.perf_counter() - started
    blob = scratch / "blob.bin"
    blob.write_bytes(os.urandom(result_size))
    started = time.perf_counter()
    s3.upload_file(str(blob), "bench-exports", "raw/blob.bin")  # type: ignore[attr-defined]
    return get_s, time.perf_counter() - started


def speed(s3: object, settings: Settings, rounds: int) -> None:
    folder = cached_recording(
        "1080p-60s",
        SampleSpec(seconds=60, width=1920, height=1080, bit_rate=4_000_000, noise=True),
    )
    size = upload(s3, folder, "live/speed")
    print(f"bench: recording is {size / 1e6:.1f} MB in {len(list(folder.glob('*.ts')))} segments")
    store = ObjectStore(settings)
    ours, floors = [], []
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        for _ in range(rounds):
            started = time.perf_counter()
            result = run_export(export_spec("live/speed", 60), store, settings, fence=NO_JOB_FENCE)
            ours.append(time.perf_counter() - started)
            ffmpeg_s = time_ffmpeg_copy(folder, Path(scratch) / "ffmpeg.mp4")
            get_s, put_s = time_raw_s3(s3, "live/speed", folder, result.size_bytes, Path(scratch))
            floors.append((ffmpeg_s, get_s, put_s))
    ours_s = statistics.median(ours)
    ffmpeg_s, get_s, put_s = (statistics.median(f[i] for f in floors) for i in range(3))
    floor = ffmpeg_s + get_s + put_s
    print(f"bench: export 60 s 1080p copy   {ours_s:6.2f} s  (median of {rounds})")
    print(f"bench:   ffmpeg -c copy          {ffmpeg_s:6.2f} s")
    print(f"bench:   raw S3 GET segments     {get_s:6.2f} s")
    print(f"bench:   raw S3 PUT result size  {put_s:6.2f} s")
    print(f"bench: ratio ours / floor = {ours_s / floor:.2f}x  (target <= 1.3x, aim < 1.0x)")


def encrypted_copy(folder: Path) -> Path:
    """The recording with every segment AES-128 encrypted, as a packager with
    -hls_key_info_file writes it (key beside the segments, explicit IV)."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    target = CACHE / f"{folder.name}-aes"
    if (target / "index.m3u8").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    key, iv = os.urandom(16), os.urandom(16)
    (target / "k.key").write_bytes(key)
    for path in sorted(folder.glob("*.ts")):
        padder = padding.PKCS7(128).padder()
        encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        data = padder.update(path.read_bytes()) + padder.finalize()
        (target / path.name).write_bytes(encryptor.update(data) + encryptor.finalize())
    playlist = (folder / "index.m3u8").read_text()
    key_line = f'#EXT-X-KEY:METHOD=AES-128,URI="k.key",IV=0x{iv.hex()}\n'
    head, first, rest = playlist.partition("#EXTINF")
    (target / "index.m3u8").write_text(head + key_line + first + rest)
    return target


def aes_speed(s3: object, settings: Settings, rounds: int) -> None:
    """60 s 1080p copy from an AES-128 archive vs the same from the clear one, alternated."""
    folder = cached_recording(
        "1080p-60s",
        SampleSpec(seconds=60, width=1920, height=1080, bit_rate=4_000_000, noise=True),
    )
    encrypted = encrypted_copy(folder)
    upload(s3, folder, "live/clear")
    upload(s3, encrypted, "live/aes")
    s3.upload_file(str(encrypted / "k.key"), "bench-archive", "live/aes/k.key")  # type: ignore[attr-defined]
    store = ObjectStore(settings)
    times: dict[str, list[float]] = {"live/clear": [], "live/aes": []}
    for _ in range(rounds):
        for prefix, taken in times.items():
            started = time.perf_counter()
            result = run_export(export_spec(prefix, 60), store, settings, fence=NO_JOB_FENCE)
            taken.append(time.perf_counter() - started)
            assert result.lack_ms == 0, result
    clear_s, aes_s = statistics.median(times["live/clear"]), statistics.median(times["live/aes"])
    print(f"bench: export 60 s 1080p copy, clear    {clear_s:6.2f} s  (median of {rounds})")
    print(f"bench: export 60 s 1080p copy, AES-128  {aes_s:6.2f} s")
    print(f"bench: ratio AES-128 / clear = {aes_s / clear_s:.2f}x  (target <= 1.10x)")


def _child_peak_rss(seconds: float, prefix: str, env: dict[str, str]) -> float:
    code = (
        "import sys,resource; sys.path.insert(0,'.');"
        "from scripts.bench_export import export_spec; from tasks.platform.settings import Settings;"
        "from tasks.storage import ObjectStore; from workers.jobs.export_pipeline import run_export;"
        "from workers.jobs.fencing import NO_JOB_FENCE;"
        f"s=Settings.from_env(); run_export(export_spec({prefix!r}, {seconds}), ObjectStore(s), s,"
        " fence=NO_JOB_FENCE);"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    )  # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec from the parent
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def memory(s3: object, env: dict[str, str]) -> None:
    folder = cached_recording(
        "360p-30min",
        SampleSpec(seconds=1800, width=640, height=360, bit_rate=1_500_000, noise=True, segment_seconds=4),
    )
    size = upload(s3, folder, "live/long")
    print(f"bench: long recording is {size / 1e6:.0f} MB")
    short = _child_peak_rss(60, "live/long", env)
    long = _child_peak_rss(1800, "live/long", env)
    print(f"bench: worker peak RSS  1 min clip {short:6.0f} MB")
    print(f"bench: worker peak RSS 30 min clip {long:6.0f} MB  (target < 250 MB, flat in clip length)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--only-aes", action="store_true", help="just the AES-128 vs clear row")
    args = parser.parse_args()
    CACHE.mkdir(exist_ok=True)
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    with ExitStack() as stack:
        endpoint = os.environ.get("RESOURCED_S3_ENDPOINT_URL") or stack.enter_context(devstack.moto_s3())
        env = {
            "RESOURCED_S3_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "bench"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "bench"),
            "AWS_DEFAULT_REGION": "us-east-1",
            "RESOURCED_WORK_DIR": str(CACHE.resolve()),
        }
        os.environ.update(env)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        for bucket in ("bench-archive", "bench-exports"):
            s3.create_bucket(Bucket=bucket)
        settings = Settings.from_env()
        if not args.only_aes:
            speed(s3, settings, args.rounds)
        aes_speed(s3, settings, args.rounds)
        if not args.skip_memory and not args.only_aes:
            memory(s3, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
