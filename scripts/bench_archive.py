"""`make bench-archive`: an export's cost against the length of the recording's history.

Through the HTTP API on the Procfile's web and worker processes (redis-server, moto's S3 server
over HTTP), a 10 s copy export from a 1-minute recording (the baseline) and from a 30-day
recording of 720 hourly playlists of 2 s segments (1.3 million entries), first cold (empty
index), then warm. The 30-day playlists are synthetic text; every entry names a distinct
object, but only the clip's hour has real segments behind it (the rest are never read). Printed
as ratios against the baseline (taken as at least 0.5 s), with the workers' peak RSS, the
index's build time and its Redis memory per 1,000 playlists. Targets: warm within 1.5x, cold
within 3x, worker memory flat.

In the same run: recording-spans through the API, a page of the 30-day archive (the clip's hour,
whose 1,800 segment objects all exist as placeholders) against the whole 1-minute recording
(target within 1.5x, as the contract says): the next pages of a walk, a walk's first page minutes
after the last (its kept folder listing stale: workers/archive/kept_listing.py), and a
recording's very first page (no listing kept: the whole folder LISTed first); and a snapshot
through the API (a still in the middle of a GOP) against decoding that GOP with the ffmpeg CLI on
a local copy of the segment.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from app.client import Client, storage_info_b64
from scripts import devstack
from scripts.samples import SampleSpec, generate_recording
from tasks.exports.spec import S3Location
from tasks.platform import keys
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from workers.archive.index import ArchiveIndex, PlaylistSummary
from workers.archive.kept_listing import Kept, decode, encode
from workers.archive.ranges import Lookup, segments_for_range

PDT_MS = 1_700_000_000_000  # where scripts/samples.py places a generated recording
HOUR_MS = 3_600_000
HOURS = 720  # 30 days of hourly playlists
CLIP_HOUR = 500  # the hour the clip is cut from: its first minute has real segments
SEGMENT_S = 2.0
CLIP_MS = 10_000
BASELINE_FLOOR_S = 0.5
REPEATS = 3
SPANS_REPEATS = 9  # a page is tens of ms on a shared machine: more samples for its medians


def iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def real_entries(playlist: Path) -> list[tuple[str, str]]:
    """(#EXTINF line, segment file name) of a generated recording's playlist."""
    lines = [line.strip() for line in playlist.read_text().splitlines() if line.strip()]
    return [(line, lines[i + 1]) for i, line in enumerate(lines) if line.startswith("#EXTINF")]


def segment_name(hour: int, n: int) -> str:
    """The clip's hour continues the real segments' names (seg_NNNNN.ts), so its folder sorts in
    time order as a recorder's does; other hours are never listed or read."""
    return f"seg_{n:05d}.ts" if hour == CLIP_HOUR else f"s{n:05d}.ts"


def hour_playlist(hour: int, real: list[tuple[str, str]]) -> str:
    """One hour of 2 s segments named h{hour}/s{n}.ts; the clip's hour starts with the real ones."""
    start_ms = PDT_MS + (hour - CLIP_HOUR) * HOUR_MS
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-TARGETDURATION:2",
        f"#EXT-X-PROGRAM-DATE-TIME:{iso(start_ms)}",
    ]
    head = real if hour == CLIP_HOUR else []
    for extinf, name in head:
        lines += [extinf, f"h{hour:04d}/{name}"]
    for n in range(len(head), int(HOUR_MS / 1000 / SEGMENT_S)):
        lines += [f"#EXTINF:{SEGMENT_S:.3f},", f"h{hour:04d}/{segment_name(hour, n)}"]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def upload_archives(s3: Any, rec_dir: Path) -> int:
    """The 1-minute recording, and the 30-day one (its playlists uploaded by a thread pool, in
    time order as a recorder writes them); returns the 30-day archive's entry count."""
    for path in sorted(rec_dir.iterdir()):
        if path.suffix in {".ts", ".m3u8"}:
            s3.upload_file(str(path), "bench-archive", f"live/minute/{path.name}")
    real = real_entries(rec_dir / "index.m3u8")
    for _, name in real:
        s3.upload_file(str(rec_dir / name), "bench-archive", f"live/month/h{CLIP_HOUR:04d}/{name}")
    texts = [hour_playlist(hour, real) for hour in range(HOURS)]

    def put(hour: int) -> None:
        s3.put_object(Bucket="bench-archive", Key=f"live/month/h{hour:04d}.m3u8", Body=texts[hour].encode())

    def placeholder(n: int) -> None:  # the clip hour's other segments exist, as in a real archive
        s3.put_object(
            Bucket="bench-archive", Key=f"live/month/h{CLIP_HOUR:04d}/{segment_name(CLIP_HOUR, n)}", Body=b""
        )

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(HOURS)))
        list(pool.map(placeholder, range(len(real), int(HOUR_MS / 1000 / SEGMENT_S))))
    print(
        f"bench: uploaded {HOURS} playlists ({sum(map(len, texts)) / 1e6:.0f} MB)"
        f" in {time.monotonic() - started:.1f} s"
    )
    return sum(text.count("#EXTINF") for text in texts)


def worker_pids(root_pid: int) -> list[int]:
    """The worker process and its pool children, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def peak_rss_mib(pids: list[int]) -> float:
    """The largest VmHWM (peak resident set) among the processes."""
    peaks = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        peaks += [int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM")]
    return max(peaks, default=0.0)


def timed_export(client: Client, live_path: str, start_ms: int, name: str) -> float:
    info = storage_info_b64("bench-archive", "bench-exports")
    started = time.perf_counter()
    result = client.export(
        live_path=live_path,
        start_pos=start_ms,
        duration=CLIP_MS,
        storage_info=info,
        file_name=name,
        max_poll_s=0.02,
    )
    elapsed = time.perf_counter() - started
    if result.lack_ms > 100:
        raise RuntimeError(f"{live_path} {name}: {result.lack_ms} ms missing from the clip")
    return elapsed


def timed_spans(client: Client, live_path: str, start_ms: int | None, duration: int | None) -> float:
    info = storage_info_b64("bench-archive")
    started = time.perf_counter()
    page = client.spans(live_path=live_path, storage_info=info, start_pos=start_ms, duration=duration)
    elapsed = time.perf_counter() - started
    if not page.spans:
        raise RuntimeError(f"{live_path}: no spans")
    return elapsed


def forget_listings(redis_url: str) -> None:
    """Drop the folder listings recording-spans keeps (workers/archive/kept_listing.py): the next
    page is a recording's very first, which LISTs the whole folder before answering."""
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(keys.archive_listing("*")):
        client.delete(key)


def age_listings(redis_url: str, seconds: float) -> None:
    """Make the kept folder listings as old as a walk `seconds` after the last one finds them."""
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(keys.archive_listing("*")):
        kept = decode(client.get(key))
        client.set(key, encode(Kept(kept.listed_at - seconds, kept.rows)))


def timed_later_walk(
    client: Client, redis_url: str, live_path: str, start: int | None, duration: int | None
) -> float:
    """The first page of a walk long after the last one, then the wait (not timed) until the
    worker's relist after that answer has made its listing fresh again, so it never delays the
    next measurement (the other recording's listing stays aged)."""
    age_listings(redis_url, 600)
    elapsed = timed_spans(client, live_path, start, duration)
    index_redis = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listings = index_redis.scan_iter(keys.archive_listing("*"))
        stamps = [decode(index_redis.get(k)).listed_at for k in listings]
        if any(time.time() - stamp < 60 for stamp in stamps) and not list(
            index_redis.scan_iter(keys.archive_relisting("*"))
        ):
            return elapsed
        time.sleep(0.05)
    raise RuntimeError("the kept listing was not made again after the answer")


def timed_snapshot(client: Client, at_ms: int) -> float:
    info = storage_info_b64("bench-archive", "bench-exports")
    started = time.perf_counter()
    client.snapshot(live_path="live/minute", start_pos=at_ms, storage_info=info)
    return time.perf_counter() - started


def ffmpeg_gop_decode(segment: Path, offset_s: float, out: Path) -> float:
    """The same still with the ffmpeg CLI: accurate seek (decode from the keyframe) to the frame."""
    command = ["ffmpeg", "-v", "error", "-y", "-ss", f"{offset_s:.3f}", "-i", str(segment)]
    started = time.perf_counter()
    subprocess.run([*command, "-frames:v", "1", str(out)], check=True, capture_output=True)
    return time.perf_counter() - started


def index_build(s3_url: str, redis_url: str) -> tuple[float, float, int]:
    """Every playlist of the 30-day archive read whole and indexed, in this process (keeping no
    segment): seconds, Redis bytes per 1,000 playlists, and segments indexed."""
    settings = Settings(s3_endpoint_url=s3_url, redis_url=redis_url)
    index = ArchiveIndex(
        redis.Redis.from_url(redis_url), "bench-full-build", 3600, settings.archive_index_max_blob_kib * 1024
    )
    lookup = Lookup(ObjectStore(settings), S3Location("bench-archive", "us-east-1"), "live/month", index)
    started = time.perf_counter()
    for obj in lookup.listed():
        lookup.segments(obj, PlaylistSummary(obj.key, obj.etag, complete=False), 0, -1)
    elapsed = time.perf_counter() - started
    indexed = sum(s.segments for s in index.summaries().values())
    summaries = int(redis.Redis.from_url(redis_url).memory_usage(index.playlists_key) or 0)
    print(f"bench: summaries alone        {summaries / HOURS:.0f} bytes per playlist")
    return elapsed, index.memory_bytes() / HOURS * 1000, indexed


def lookups_logged(log: Path) -> list[dict[str, int]]:
    """What the worker's `archive lookup` log lines say each 30-day export read."""
    found = []
    for text in log.read_text(errors="replace").splitlines():
        if '"archive lookup"' in text and "live/month" in text:
            line = json.loads(text)
            found.append({k: line[k] for k in ("head_reads", "full_reads", "from_index")})
    return found


def lookup_breakdown(s3_url: str, redis_url: str) -> str:
    """The lookup alone, in this process, on an index of its own: cold and warm, and the LIST
    that both pay (the floor of any lookup)."""
    settings = Settings(s3_endpoint_url=s3_url, redis_url=redis_url)
    store, source = ObjectStore(settings), S3Location("bench-archive", "us-east-1")
    index = ArchiveIndex(redis.Redis.from_url(redis_url), "bench-lookup", 3600, 4 * 1024 * 1024)
    started = time.perf_counter()
    Lookup(store, source, "live/month", index).listed()
    listing = time.perf_counter() - started
    times = []
    for offset in (20_000, 21_000):
        started = time.perf_counter()
        found = segments_for_range(
            store, source, "live/month", PDT_MS + offset, PDT_MS + offset + CLIP_MS, index=index
        )
        times.append(time.perf_counter() - started)
    return (
        f"cold {times[0] * 1000:.0f} ms, warm {times[1] * 1000:.0f} ms ({len(found)} segments),"
        f" of which the LIST of the folder {listing * 1000:.0f} ms"
    )


def main() -> int:
    with devstack.bench_stack() as stack:
        work, s3 = stack.work, stack.s3
        redis_url = stack.env["RESOURCED_REDIS_URL"]
        s3_url = stack.env["RESOURCED_S3_ENDPOINT_URL"]
        env = {
            **stack.env,
            "RESOURCED_WORKER_CONCURRENCY": "1",  # one pool process: its peak RSS is every export's
        }
        rec = generate_recording(work / "rec", SampleSpec(seconds=60))
        entries = upload_archives(s3, rec.directory)
        port = devstack.free_port()
        web = devstack.start_procfile("web", {**env, "PORT": str(port)}, work / "web.log")
        worker = devstack.start_procfile("worker", env, work / "worker.log")
        try:
            base = f"http://127.0.0.1:{port}"
            devstack.wait_http_ok(base + "/healthz", proc=web)
            devstack.wait_workers(redis_url)
            client = Client(base, devstack.issue_session(env, "bench"), "bench")
            timed_export(client, "live/minute", PDT_MS, "warmup")  # imports, pools, connections
            minute = [
                timed_export(client, "live/minute", PDT_MS + 20_000 + i * 1000, f"m{i}")
                for i in range(REPEATS)
            ]
            rss_minute = peak_rss_mib(worker_pids(worker.pid))
            cold = timed_export(client, "live/month", PDT_MS + 20_000, "cold")
            warm = [
                timed_export(client, "live/month", PDT_MS + 21_000 + i * 1000, f"w{i}")
                for i in range(REPEATS)
            ]
            rss_month = peak_rss_mib(worker_pids(worker.pid))
            timed_spans(client, "live/minute", None, None)  # warm-up, as for the exports
            hour_start = PDT_MS  # the clip's hour starts where the 1-minute recording does
            fresh_minute, fresh_month, cold_minute, cold_month = [], [], [], []
            for _ in range(SPANS_REPEATS):  # a walk's first page, minutes after the last walk
                fresh_minute.append(timed_later_walk(client, redis_url, "live/minute", None, None))
                fresh_month.append(timed_later_walk(client, redis_url, "live/month", hour_start, HOUR_MS))
            for _ in range(SPANS_REPEATS):  # a recording's very first page: no listing kept at all
                forget_listings(redis_url)
                cold_minute.append(timed_spans(client, "live/minute", None, None))
                forget_listings(redis_url)
                cold_month.append(timed_spans(client, "live/month", hour_start, HOUR_MS))
            spans_minute = [timed_spans(client, "live/minute", None, None) for _ in range(SPANS_REPEATS)]
            spans_month = [
                timed_spans(client, "live/month", hour_start, HOUR_MS) for _ in range(SPANS_REPEATS)
            ]
            timed_snapshot(client, PDT_MS + 10_540)  # warm-up
            stills = [timed_snapshot(client, PDT_MS + 20_540 + i * 40) for i in range(REPEATS)]
            segment = rec.directory / rec.segments[10].name  # 20-22 s: 0.54 s in, mid-GOP
            cli = [ffmpeg_gop_decode(segment, 0.54 + i * 0.04, work / "still.jpg") for i in range(REPEATS)]
            index_redis = redis.Redis.from_url(redis_url)
            used = sum(
                int(index_redis.memory_usage(k) or 0) for k in index_redis.scan_iter("resourced:archive:*")
            )
            reads = lookups_logged(work / "worker.log")
        finally:
            devstack.stop(worker, 20)
            devstack.stop(web)
        breakdown = lookup_breakdown(s3_url, redis_url)
        build_s, per_thousand, indexed = index_build(s3_url, redis_url)
    raw = statistics.median(minute)
    baseline = max(BASELINE_FLOOR_S, raw)  # the issue's rule: noise below 0.5 s does not decide
    warm_s = statistics.median(warm)
    print(f"bench: 30-day archive: {HOURS} playlists, {entries:,} segment entries")
    print(
        f"bench: 1-minute export        {statistics.median(minute):.3f} s"
        f" (baseline taken as {baseline:.2f} s)"
    )
    print(
        f"bench: 30-day export, cold    {cold:.3f} s = {cold / baseline:.2f}x  (target <= 3x;"
        f" {cold / raw:.2f}x the raw 1-minute time)"
    )
    print(
        f"bench: 30-day export, warm    {warm_s:.3f} s = {warm_s / baseline:.2f}x  (target <= 1.5x;"
        f" {warm_s / raw:.2f}x the raw 1-minute time)"
    )
    print(
        f"bench: worker peak RSS        {rss_minute:.0f} MiB after 1-minute exports,"
        f" {rss_month:.0f} MiB after 30-day ones"
    )
    print(f"bench: 30-day lookups' reads  cold {reads[0]}, then {reads[1:]}")
    print(f"bench: lookup in-process      {breakdown}")
    print(f"bench: index after exports    {used / 1024:.0f} KiB in Redis (heads + the clip's playlist)")
    print(f"bench: full index build       {build_s:.1f} s for {HOURS} playlists ({indexed:,} segments)")
    print(f"bench: Redis per 1,000 playlists fully indexed: {per_thousand / 1024 / 1024:.1f} MiB")
    spans_ratio = statistics.median(spans_month) / statistics.median(spans_minute)
    fresh_ratio = statistics.median(fresh_month) / statistics.median(fresh_minute)
    print(
        f"bench: spans, next pages      1-minute {statistics.median(spans_minute) * 1000:.0f} ms;"
        f" a 30-day page {statistics.median(spans_month) * 1000:.0f} ms = {spans_ratio:.2f}x (target <= 1.5x)"
    )
    cold_ratio = statistics.median(cold_month) / statistics.median(cold_minute)
    print(
        f"bench: spans, a walk's first  1-minute {statistics.median(fresh_minute) * 1000:.0f} ms;"
        f" a 30-day page {statistics.median(fresh_month) * 1000:.0f} ms = {fresh_ratio:.2f}x (target <= 1.5x;"
        " the kept listing 10 min old: a probe of the folder's end, the relist after the answer)"
    )
    print(
        f"bench: spans, first ever      1-minute {statistics.median(cold_minute) * 1000:.0f} ms;"
        f" a 30-day page {statistics.median(cold_month) * 1000:.0f} ms = {cold_ratio:.2f}x"
        " (no listing kept: each LISTs its whole folder, 721 entries for the 30-day one)"
    )
    print(
        f"bench: snapshot via the API   {statistics.median(stills) * 1000:.0f} ms; the GOP with the"
        f" ffmpeg CLI on a local segment {statistics.median(cli) * 1000:.0f} ms"
    )
    ok = cold / baseline <= 3 and warm_s / baseline <= 1.5 and rss_month <= rss_minute * 1.2 + 10
    ok = ok and spans_ratio <= 1.5 and fresh_ratio <= 1.5
    print("bench: targets met" if ok else "bench: TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "x"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ):
        os.environ.setdefault(name, value)  # moto's local server takes any key
    sys.exit(main())
