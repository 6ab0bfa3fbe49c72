"""`make bench-api`: poll throughput and latency of the production web server, with wrk.

Starts redis-server, moto's S3 server, the Procfile's web and one worker; exports a clip to
ready; then wrk sends that same poll for a while and prints requests/s and p50/p99, next to
redis-benchmark's GET for scale. Then the same polls while a second wrk floods the server
with malformed and oversized requests, to show bad input does not slow valid polls, and
while 200 connections keep polls held open (long polling) on a job that never ends. All
traffic stays on 127.0.0.1 and every run is bounded in time.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from app.client import Client, storage_info_b64
from scripts import devstack
from scripts.samples import SampleSpec, generate_recording

PDT_MS = 1_700_000_000_000
DURATION_S = 10
WARM_UP_S = 3  # the first requests of a fresh process are slow (imports, caches): not measured


def wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def millis(label: str) -> float:
        found = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if not found:
            return float("nan")
        value, unit = float(found.group(1)), found.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return {"rps": float(rate.group(1)) if rate else 0.0, "p50": millis("50"), "p99": millis("99")}


def lua(body: str) -> str:
    lines = [
        'wrk.method = "POST"',
        'wrk.headers["Content-Type"] = "application/json"',
        f"wrk.body = {json.dumps(body)}",
    ]
    return "\n".join(lines) + "\n"


HELD = 200


def held_now(base: str) -> float:
    for line in requests.get(base + "/metrics", timeout=10).text.splitlines():
        if line.startswith("resourced_held_polls "):
            return float(line.split()[1])
    return 0.0


def held_polls(base: str, redis_url: str, ready_body: dict[str, object], work: Path) -> dict[str, float]:
    """Ready polls and /healthz while HELD connections poll a job that never ends (admitted in
    the store but never queued, so each poll is held for the whole RESOURCED_LONG_POLL_S)."""
    import redis

    from app.api.export import build_spec
    from app.schemas.export import ExportRequestSchema
    from tasks.exports.store import ExportJobStore

    held_body = {**ready_body, "LivePath": "live/held"}
    data = ExportRequestSchema(max_duration_ms=10**9).load(held_body)
    spec = build_spec(data, "bench", "us-east-1")
    client = redis.Redis.from_url(redis_url)
    ExportJobStore(client).admit(spec, "bench.never", 10_000, 10_000)
    script = work / "held.lua"
    script.write_text(lua(json.dumps(held_body)))
    url = base + "/resource/v1/i/export-to-s3dir"
    holder = subprocess.Popen(
        ["wrk", "-t1", f"-c{HELD}", f"-d{DURATION_S + 10}s", "--timeout", "30s", "-s", str(script), url],
        stdout=subprocess.DEVNULL,
    )
    try:
        devstack.wait_for(lambda: held_now(base) >= HELD * 0.95, "held polls", 30)
        health: list[float] = []
        for _ in range(20):
            started = time.perf_counter()
            requests.get(base + "/healthz", timeout=5).raise_for_status()
            health.append((time.perf_counter() - started) * 1000)
        result = wrk(url, work / "poll.lua", 16, DURATION_S)
    finally:
        holder.terminate()
        holder.wait(30)
    return {**result, "health_p50": statistics.median(health), "health_max": max(health)}


def main() -> int:
    for tool in ("wrk", "redis-benchmark"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} is missing (make bench-api installs it)")
            return 1
    with devstack.bench_stack() as stack:
        work, s3 = stack.work, stack.s3
        redis_url = stack.env["RESOURCED_REDIS_URL"]
        env = stack.env
        rec = generate_recording(work / "rec", SampleSpec())
        for path in rec.directory.iterdir():
            if path.suffix in {".ts", ".m3u8"}:
                s3.upload_file(str(path), "bench-archive", f"live/bench/{path.name}")
        with devstack.service(env) as base:
            session = devstack.issue_session(env, "bench")
            client = Client(base, session, "bench")
            info = storage_info_b64("bench-archive", "bench-exports")
            client.export(
                live_path="live/bench", start_pos=PDT_MS, duration=2000, storage_info=info, max_poll_s=0.2
            )
            body = json.dumps(
                {
                    "StartPos": PDT_MS,
                    "StartTime": "0",
                    "Duration": 2000,
                    "LivePath": "live/bench",
                    "FileName": "",
                    "SessionId": session,
                    "export_type": 0,
                    "storage_info": info,
                    "userid": "bench",
                    "ServiceCaller": "mma",
                    "PeerId": "",
                }
            )
            poll, bad = work / "poll.lua", work / "bad.lua"
            poll.write_text(lua(body))
            bad.write_text(
                lua('{"StartPos": "x", "Duration": -1, "storage_info": "%%%' + "A" * 300_000 + '"')
            )
            redis_port = redis_url.rsplit(":", 1)[1].split("/")[0]
            rb = subprocess.run(
                ["redis-benchmark", "-p", redis_port, "-t", "get", "-n", "100000", "-q"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            redis_rps = float(re.search(r"([\d.]+) requests per second", rb).group(1))  # type: ignore[union-attr]
            url = base + "/resource/v1/i/export-to-s3dir"
            wrk(url, poll, 16, WARM_UP_S)  # every process has served its first requests
            alone = wrk(url, poll, 16, DURATION_S)
            rps, p50, p99 = alone["rps"], alone["p50"], alone["p99"]
            print(f"bench: polls (ready job): {rps:7.0f}/s  p50 {p50:.2f} ms  p99 {p99:.2f} ms")
            print("bench:   (target >= 2000/s, p99 < 20 ms)")
            print(
                f"bench: bare redis GET    : {redis_rps:7.0f}/s  ({1000 / redis_rps:.3f} ms each, one client)"
            )
            flood = subprocess.Popen(
                ["wrk", "-t1", "-c8", f"-d{DURATION_S}s", "-s", str(bad), url], stdout=subprocess.DEVNULL
            )
            loaded = wrk(url, poll, 16, DURATION_S)
            flood.wait(DURATION_S + 30)
            print(
                f"bench: polls under a flood of malformed/oversized requests: {loaded['rps']:7.0f}/s  "
                f"p50 {loaded['p50']:.2f} ms  p99 {loaded['p99']:.2f} ms"
            )
            held = held_polls(base, redis_url, json.loads(body), work)
            print(
                f"bench: polls while {HELD} polls are held open (long polling): {held['rps']:7.0f}/s  "
                f"p50 {held['p50']:.2f} ms  p99 {held['p99']:.2f} ms; /healthz meanwhile "
                f"p50 {held['health_p50']:.2f} ms, max {held['health_max']:.2f} ms"
            )
        # The same polls against sync workers (the web tier before long polling), in this run:
        # the machine is shared, so the ratio says more than the absolute figures.
        with devstack.service({**env, "WEB_WORKER_CLASS": "sync"}, workers=0) as sync_base:
            wrk(sync_base + "/resource/v1/i/export-to-s3dir", poll, 16, WARM_UP_S)
            sync = wrk(sync_base + "/resource/v1/i/export-to-s3dir", poll, 16, DURATION_S)
        print(
            f"bench: the same polls on sync workers: {sync['rps']:7.0f}/s  p50 {sync['p50']:.2f} ms  "
            f"p99 {sync['p99']:.2f} ms; gevent/sync throughput {alone['rps'] / max(sync['rps'], 1):.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
