"""`make demo`: the whole service on this machine, and one clip exported through its HTTP API.

With RESOURCED_REDIS_URL / RESOURCED_S3_ENDPOINT_URL set it uses those; otherwise it starts
its own redis-server and moto's S3 server. Then it runs the Procfile's web and worker,
generates a minute of 720p H.264+AAC HLS, uploads it, asks for a clip exactly as a client
would, polls until ready, downloads it and prints what it got.

`make serve` (DEMO_SERVE=1) then leaves a complete sandbox running: the image bed on a bucket
it made, Flower, and `.demo/env` with every variable a second shell needs (URL, a session,
S3 endpoint and credentials, Redis, the secret key that issues sessions for other users, the
callback signing secret that verifies its webhooks).
SIGINT and SIGTERM stop every process it started, in reverse order; DEMO_SAMPLE=0 skips the
sample export (the tests start the sandbox that way).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av
import boto3
import requests

from app.client import Client, ResourcedError, storage_info_b64
from scripts import devstack
from scripts.samples import SampleSpec, generate_recording, read_frame_index

ARCHIVE, EXPORTS, IMAGES = "demo-archive", "demo-exports", "demo-images"
LIVE_PATH = "live/demo-cam"
PDT_MS = 1_700_000_000_000


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


class Stopped(SystemExit):
    """SIGTERM or SIGHUP arrived: unwind like Ctrl-C, so every started process is stopped."""


def stop_on_signals() -> None:
    """Without this, `kill %1`, a supervisor's stop or a closed terminal would end this process
    at once and leave redis, moto, gunicorn, celery and Flower running in their own sessions.
    Ctrl-C (SIGINT) goes the same way. A second signal during the unwinding is ignored, so the
    stop in progress completes instead of leaving half the stack behind."""

    def handler(signum: int, _frame: object) -> None:
        for again in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(again, signal.SIG_IGN)
        say(f"{signal.Signals(signum).name}: stopping everything this started")
        raise Stopped(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, handler)


def service_env(redis_url: str, s3_url: str, workdir: Path) -> dict[str, str]:
    """The web's and workers' environment. The callback signing secret is made here, not left to
    devstack, so the sandbox's .demo/env can hand it to a client that verifies its webhooks."""
    return {
        "RESOURCED_REDIS_URL": redis_url,
        "RESOURCED_S3_ENDPOINT_URL": s3_url,
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "demo"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "demo"),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "RESOURCED_SECRET_KEY": os.environ.get("RESOURCED_SECRET_KEY") or secrets.token_urlsafe(32),
        "RESOURCED_CALLBACK_SECRET": os.environ.get("RESOURCED_CALLBACK_SECRET")
        or devstack.local_callback_secret(),
        "RESOURCED_ALLOWED_BUCKETS": f"{ARCHIVE},{EXPORTS}",
        "RESOURCED_IMGBED_BUCKET": IMAGES,
        "RESOURCED_WORK_DIR": str(workdir),
        "HOST": "127.0.0.1",
    }


def main() -> int:
    stop_on_signals()
    serving = os.environ.get("DEMO_SERVE") == "1"
    workdir = Path(os.environ.get("DEMO_DIR", ".demo")).resolve()
    workdir.mkdir(exist_ok=True)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    with ExitStack() as stack:
        redis_url = os.environ.get("RESOURCED_REDIS_URL") or stack.enter_context(
            devstack.redis_server(logs / "redis.log")
        )
        s3_url = os.environ.get("RESOURCED_S3_ENDPOINT_URL") or stack.enter_context(
            devstack.moto_s3(logs / "s3.log")
        )
        say(f"redis at {redis_url}, S3 at {s3_url}")
        env = service_env(redis_url, s3_url, workdir)
        s3 = boto3.client(
            "s3",
            endpoint_url=s3_url,
            region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        for bucket in (ARCHIVE, EXPORTS, IMAGES):
            with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
                s3.create_bucket(Bucket=bucket)

        say("starting the Procfile's web and worker")
        base = stack.enter_context(devstack.service(env, logs))
        if serving and os.environ.get("DEMO_SAMPLE", "1") == "0":
            serve(stack, workdir, env, base)  # returns only by a signal

        say("generating a 60 s 1280x720 25 fps H.264+AAC HLS recording with PROGRAM-DATE-TIME")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            spec = SampleSpec(
                seconds=60, width=1280, height=720, bit_rate=2_000_000, program_date_time_ms=PDT_MS
            )
            recording = generate_recording(tmp, spec)
            for path in sorted(Path(tmp).iterdir()):
                if path.suffix in {".ts", ".m3u8"}:
                    s3.upload_file(str(path), ARCHIVE, f"{LIVE_PATH}/{path.name}")
        say(
            f"uploaded {len(recording.segments)} segments to s3://{ARCHIVE}/{LIVE_PATH}/ "
            f"in {time.monotonic() - started:.1f} s"
        )

        session = devstack.issue_session(env, "demo-user")
        client = Client(base, session, "demo-user")
        say(f"exporting 20 s from StartPos {PDT_MS} + StartTime 12500 ms of {LIVE_PATH} through the HTTP API")
        started = time.monotonic()
        try:
            result = client.export(
                live_path=LIVE_PATH,
                start_pos=PDT_MS,
                start_time=12_500,
                duration=20_000,
                file_name="demo-clip",
                storage_info=storage_info_b64(ARCHIVE, EXPORTS),
                peer_id="demo-peer",
                on_progress=lambda answer: say(f"  {answer}"),
                max_poll_s=1.0,
                timeout_s=300,
            )
        except ResourcedError as exc:
            say(f"export failed: {exc}; logs are in {logs}")
            return 1
        say(f"answer after {time.monotonic() - started:.1f} s:")
        print(json.dumps(result.answer, indent=2))
        answer = result.answer
        out = workdir / "demo-clip.mp4"
        out.write_bytes(requests.get(answer["VideoPath"], timeout=60).content)
        (workdir / "demo-clip.jpg").write_bytes(requests.get(answer["ImagePath"], timeout=60).content)
        with av.open(str(out)) as container:
            video = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            indices = [read_frame_index(f) for f in container.decode(video)]
            say(f"downloaded {out} ({out.stat().st_size} bytes)")
            ctx = video.codec_context
            seconds = float(container.duration or 0) / 1e6
            say(
                f"  video: {ctx.name} {ctx.width}x{ctx.height}, {len(indices)} frames, "
                f"source frames {indices[0]}..{indices[-1]}, duration {seconds:.3f} s"
            )
            if audio is not None:
                say(f"  audio: {audio.codec_context.name} {audio.codec_context.sample_rate} Hz")
        say(f"  first frame image: {workdir / 'demo-clip.jpg'}")
        say(f"  in S3: s3://{EXPORTS}/{answer['S3Dir']}/demo-clip.mp4 (version {answer['Version']})")
        if serving:
            serve(stack, workdir, env, base)  # returns only by a signal
        say("done")
    return 0


SECOND_SHELL = (
    "RESOURCED_SECRET_KEY",
    "RESOURCED_CALLBACK_SECRET",  # verifies the webhooks (CallbackUrl, PutRestoreResult) it signs
    "RESOURCED_REDIS_URL",
    "RESOURCED_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "RESOURCED_ALLOWED_BUCKETS",
    "RESOURCED_IMGBED_BUCKET",
)


def write_env_file(path: Path, variables: dict[str, str]) -> None:
    """`source`-able, quoted, readable by its owner only: it holds the secret key and a session."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("# written by `make serve`; valid while it runs\n")
        out.writelines(f"export {name}={shlex.quote(value)}\n" for name, value in variables.items())


def serve(stack: ExitStack, workdir: Path, env: dict[str, str], base: str) -> NoReturn:
    """Leave the stack running for the CLI, curl and a second shell, with Flower beside it; the
    variables they need go to .demo/env, removed again when the sandbox stops."""
    session = devstack.issue_session(env, "demo-user")
    flower_port, flower_auth = devstack.free_port(), f"ops:{secrets.token_urlsafe(12)}"
    flower = devstack.start_procfile(
        "flower",
        {**env, "FLOWER_PORT": str(flower_port), "FLOWER_BASIC_AUTH": flower_auth},
        workdir / "logs" / "flower.log",
    )
    stack.callback(devstack.stop, flower, 20)
    flower_url = f"http://127.0.0.1:{flower_port}"
    devstack.wait_http_ok(f"{flower_url}/healthcheck", timeout_s=60, proc=flower)
    env_file = workdir / "env"
    write_env_file(
        env_file,
        {
            "RESOURCED_URL": base,
            "RESOURCED_SESSION": session,
            "RESOURCED_USER": "demo-user",
            **{name: env[name] for name in SECOND_SHELL},
            "FLOWER_URL": flower_url,
            "FLOWER_BASIC_AUTH": flower_auth,
        },
    )
    stack.callback(env_file.unlink, missing_ok=True)
    say(f"serving at {base}, Flower at {flower_url} ({flower_auth}); in another shell:")
    print(f"  source {env_file}")
    print(
        f"  .venv/bin/resourced export --bucket {ARCHIVE} --dest-bucket {EXPORTS} --live-path {LIVE_PATH} \\"
    )
    print(f"      --start {PDT_MS} --start-time 12500 --duration 20000 --type 1 --download clip.mp4")
    print("  .venv/bin/resourced session issue --user bob   # a session for another user")
    print(
        '  curl -H "X-Session-Id: $RESOURCED_SESSION" -F file=@photo.png -F path=demo'
        ' "$RESOURCED_URL/api/imgbed/v1/upload"'
    )
    say("Ctrl-C (or SIGTERM) stops everything")
    while True:
        time.sleep(3600)  # until a signal unwinds the stack (stop_on_signals)


if __name__ == "__main__":
    sys.exit(main())
