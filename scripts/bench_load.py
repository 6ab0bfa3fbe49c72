"""`make bench-load`: sustained load, and whether memory stays bounded under it.

Starts redis-server, moto's S3 server, the Procfile's web and `--workers` workers
(scripts/devstack.py), uploads a 720p H.264 and a 720p H.265 recording, then runs `--clients` clients for
`--minutes`: each submits an export (three stream copies of H.264 to one H.264 encode of an
H.265 recording, 4 s each, at a
varying start, each to a key of its own so every request is a new job), obeys TimeWait on 1
and on 7 (a refusal, counted), and starts the next when its job ends. Loops are bounded (polls
per job, jobs per client); everything is on loopback. Afterwards in-flight jobs get
`--drain-s` to finish; any still unfinished then is a lost job (must be 0).

Prints exports/min, p50/p95/p99 time to clip per type, refusals, failures, lost jobs, /healthz
latency sampled throughout, and resident memory of the workers (each child and the whole
stack) after warm-up and at the end, against the bound deploy/README.md documents ("Worker
memory"). Exit status 1 when a job was lost or the bound was broken.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from app.client import storage_info_b64
from scripts import devstack
from scripts.bench_export import cached_recording, upload
from scripts.samples import SampleSpec
from tasks.platform.settings import Settings

PDT_MS = 1_700_000_000_000
PATH = "/resource/v1/i/export-to-s3dir"
CLIP_MS = 4_000
MAX_POLLS_PER_JOB = 400
MAX_JOBS_PER_CLIENT = 500
# deploy/README.md, "Worker memory": a child ends a task under the per-child limit or is
# replaced; one task's own peak on top of it is the most a child can hold.
TASK_PEAK_MIB = 100
CHILD_BOUND_MIB = Settings().worker_max_memory_per_child_mib + TASK_PEAK_MIB
PAGE = 4096


@dataclass
class Tally:
    """What the clients saw; one lock, appended to by every client thread."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    times: dict[str, list[float]] = field(default_factory=lambda: {"copy": [], "transcode": []})
    refusals: int = 0
    failures: list[str] = field(default_factory=list)
    in_flight: int = 0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Client(threading.Thread):
    def __init__(self, index: int, base: str, session: str, tally: Tally, until: float, drain: float) -> None:
        super().__init__(daemon=True)
        self.index, self.base, self.session, self.tally = index, base, session, tally
        self.until, self.drain = until, drain
        self.http = requests.Session()

    def body(self, job: int) -> tuple[str, dict[str, Any]]:
        kind = "transcode" if (self.index + job) % 4 == 0 else "copy"
        return kind, {
            "ServiceCaller": "mma",
            "StartPos": PDT_MS,
            "StartTime": str(500 * ((self.index + job) % 20)),
            "Duration": CLIP_MS,
            "PeerId": f"load-{self.index}",
            "LivePath": "live/load-hevc" if kind == "transcode" else "live/load",
            "FileName": "clip",
            "SessionId": self.session,
            "export_type": 1 if kind == "transcode" else 0,
            "storage_info": storage_info_b64("bench-archive", "bench-exports"),
            "userid": "bench",
            "ExportS3Key": f"load/{uuid.uuid4().hex}",
        }

    def run(self) -> None:
        for job in range(MAX_JOBS_PER_CLIENT):
            if time.monotonic() >= self.until:
                return
            self.one(*self.body(job))

    def one(self, kind: str, body: dict[str, Any]) -> None:
        """One job, polled while it answers 1 (or 7) and obeying TimeWait; a job answered 1 that
        has not ended when the polls or the drain deadline run out stays in `in_flight`: lost."""
        started, accepted, ended = time.monotonic(), False, False
        try:
            for _ in range(MAX_POLLS_PER_JOB):
                if time.monotonic() > self.drain:
                    return
                answer = self.http.post(self.base + PATH, json=body, timeout=60).json()
                code = answer["ErrorCode"]
                if code == 5:
                    ended = True
                    with self.tally.lock:
                        self.tally.times[kind].append(time.monotonic() - started)
                    return
                if code == 1 and not accepted:
                    accepted = True
                    with self.tally.lock:
                        self.tally.in_flight += 1
                elif code == 7:
                    with self.tally.lock:
                        self.tally.refusals += 1
                elif code != 1:
                    ended = True
                    with self.tally.lock:
                        self.tally.failures.append(f"{kind}: {answer}")
                    return
                time.sleep(max(1, int(answer.get("TimeWait", 1))))
        except (requests.RequestException, ValueError) as exc:
            ended = True  # the client gave up, not the service: a failure, not a lost job
            with self.tally.lock:
                self.tally.failures.append(f"{kind}: {exc}")
        finally:
            if accepted and ended:
                with self.tally.lock:
                    self.tally.in_flight -= 1


def proc_stat(pid: int) -> tuple[int, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[1]), fields[0]


def rss_mib(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def stack_processes() -> dict[int, str]:
    """This process's descendants (the stack), each with its role: worker main, worker child, other."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := proc_stat(int(entry.name))) and found[1] != "Z":
            parents[int(entry.name)] = found[0]
    tree, todo = set(), [int(Path("/proc/self/stat").read_text().split()[0])]
    while todo:
        parent = todo.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                todo.append(pid)
    roles = {}
    for pid in tree:
        line = cmdline(pid)
        if "celery" in line and " worker " in line:
            roles[pid] = "child" if "celery" in cmdline(parents.get(pid, 0)) else "worker"
        else:
            roles[pid] = "other"
    return roles


@dataclass(frozen=True)
class Memory:
    children_mib: list[float]
    workers_mib: float  # worker mains and children together
    stack_mib: float  # every process the benchmark started

    @classmethod
    def sample(cls) -> Memory:
        roles = stack_processes()
        sizes = {pid: rss_mib(pid) for pid in roles}
        children = [sizes[p] for p, r in roles.items() if r == "child"]
        workers = sum(sizes[p] for p, r in roles.items() if r != "other")
        return cls(sorted(children), workers, sum(sizes.values()))


class Watcher(threading.Thread):
    """Samples /healthz latency and the largest worker child until told to stop."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base, self.stop = base, threading.Event()
        self.health: list[float] = []
        self.peak_child_mib = 0.0

    def run(self) -> None:
        http = requests.Session()
        while not self.stop.wait(0.5):
            started = time.monotonic()
            try:
                http.get(self.base + "/healthz", timeout=10).raise_for_status()
                self.health.append(time.monotonic() - started)
            except requests.RequestException:
                self.health.append(10.0)
            self.peak_child_mib = max([self.peak_child_mib, *Memory.sample().children_mib])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--warmup-s", type=float, default=30.0)
    parser.add_argument("--drain-s", type=float, default=120.0)
    args = parser.parse_args()
    source = cached_recording(
        "load-720p-h264",
        SampleSpec(seconds=16, width=1280, height=720, gop_frames=50, segment_seconds=2),
    )
    hevc = cached_recording(  # an H.264 export of H.265 decodes and encodes every frame
        "load-720p-hevc",
        SampleSpec(seconds=16, width=1280, height=720, gop_frames=50, segment_seconds=2, video_codec="hevc"),
    )
    with devstack.bench_stack() as stack:
        upload(stack.s3, source, "live/load")
        upload(stack.s3, hevc, "live/load-hevc")
        with devstack.service(stack.env, stack.work, workers=args.workers) as base:
            session = devstack.issue_session(stack.env, "bench")
            tally, watcher = Tally(), Watcher(base)
            started = time.monotonic()
            until = started + args.minutes * 60
            clients = [
                Client(i, base, session, tally, until, until + args.drain_s) for i in range(args.clients)
            ]
            print(
                f"bench: {args.clients} clients, {args.workers} workers, {args.minutes:g} min,"
                f" 4 s clips of 720p (3 copies : 1 encode from H.265)",
                flush=True,
            )
            watcher.start()
            for client in clients:
                client.start()
            time.sleep(min(args.warmup_s, args.minutes * 60))
            warm = Memory.sample()
            for client in clients:
                client.join(max(0.0, until + args.drain_s + 5 - time.monotonic()))
            lost = tally.in_flight
            end = Memory.sample()
            watcher.stop.set()
            watcher.join(5)
            elapsed_min = (min(time.monotonic(), until + args.drain_s) - started) / 60
            report(tally, watcher, warm, end, elapsed_min, lost)
            broken = watcher.peak_child_mib > CHILD_BOUND_MIB
            return 1 if lost or broken else 0


def report(tally: Tally, watcher: Watcher, warm: Memory, end: Memory, minutes: float, lost: int) -> None:
    done = sum(len(v) for v in tally.times.values())
    print(f"bench: {done} exports in {minutes:.1f} min = {done / minutes:.1f} exports/min")
    for kind, times in tally.times.items():
        print(
            f"bench:   {kind:9s} n={len(times):4d}  time to clip p50 {percentile(times, 50):6.2f} s"
            f"  p95 {percentile(times, 95):6.2f} s  p99 {percentile(times, 99):6.2f} s"
        )
    print(f"bench: refusals (7, obeyed) {tally.refusals}, failures {len(tally.failures)}, lost jobs {lost}")
    for failure in itertools.islice(tally.failures, 5):
        print(f"bench:   {failure}")
    health = watcher.health
    print(
        f"bench: /healthz p50 {percentile(health, 50) * 1000:.0f} ms"
        f"  p99 {percentile(health, 99) * 1000:.0f} ms"
        f"  max {max(health, default=0) * 1000:.0f} ms ({len(health)} samples)"
    )
    print(
        f"bench: RSS after warm-up: children {', '.join(f'{m:.0f}' for m in warm.children_mib)} MiB,"
        f" workers {warm.workers_mib:.0f} MiB, stack {warm.stack_mib:.0f} MiB"
    )
    print(
        f"bench: RSS at the end:    children {', '.join(f'{m:.0f}' for m in end.children_mib)} MiB,"
        f" workers {end.workers_mib:.0f} MiB, stack {end.stack_mib:.0f} MiB"
        f" ({(end.stack_mib / warm.stack_mib - 1) * 100:+.0f} %)"
    )
    verdict = "within" if watcher.peak_child_mib <= CHILD_BOUND_MIB else "OVER"
    print(
        f"bench: largest worker child seen {watcher.peak_child_mib:.0f} MiB,"
        f" {verdict} the documented bound of {CHILD_BOUND_MIB} MiB"
    )


if __name__ == "__main__":
    sys.exit(main())
