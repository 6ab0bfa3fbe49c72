"""`make serve` is a whole sandbox: a second shell with nothing but `.demo/env` issues a session
for another user and uploads to the image bed, and SIGTERM or SIGINT leaves no process it started."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image

from scripts.devstack import ROOT
from tests.processes import descendants, wait_all_gone

pytestmark = pytest.mark.integration


def clean_environ() -> dict[str, str]:
    """This environment without the service's own variables: the sandbox must bring its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("RESOURCED_", "AWS_", "FLOWER_"))}


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    env = {**clean_environ(), "DEMO_SERVE": "1", "DEMO_SAMPLE": "0", "DEMO_DIR": str(tmp_path)}
    log = (tmp_path / "demo.out").open("wb")
    demo = subprocess.Popen([sys.executable, "scripts/demo.py"], cwd=ROOT, env=env, stdout=log, stderr=log)
    env_file = tmp_path / "env"
    deadline = time.monotonic() + 120
    while not env_file.exists():
        if demo.poll() is not None or time.monotonic() > deadline:
            demo.kill()
            pytest.fail(f"the sandbox did not start: {(tmp_path / 'demo.out').read_text()[-3000:]}")
        time.sleep(0.2)
    try:
        yield demo, env_file
    finally:
        if demo.poll() is None:
            os.kill(demo.pid, signal.SIGINT)
            demo.wait(60)
        log.close()


def cmdline(pid: int) -> bytes:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    return b""


def environ(pid: int) -> bytes:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/environ").read_bytes()
    return b""


def second_shell(env_file: Path, command: str) -> str:
    """`source .demo/env` in a fresh shell, then `command`: what a person does in another terminal."""
    script = f"set -e; . {env_file}; {command}"
    bin_dir = Path(sys.executable).parent
    env = {**clean_environ(), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, check=True, timeout=60
    ).stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_second_shell_works_and_a_signal_stops_everything(
    sandbox: tuple[subprocess.Popen, Path], signum: int
) -> None:
    demo, env_file = sandbox
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"  # it holds the secret key
    values = dict(line.split("=", 1) for line in second_shell(env_file, "env").splitlines() if "=" in line)
    assert values["RESOURCED_CALLBACK_SECRET"].startswith("whsec_")  # a client verifies webhooks
    bob = second_shell(env_file, "resourced session issue --user bob").strip()
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, format="PNG")
    upload = requests.post(
        f"{values['RESOURCED_URL']}/api/imgbed/v1/upload",
        headers={"X-Session-Id": bob},
        files={"file": ("test.png", buffer.getvalue(), "image/png")},
        data={"path": "bob"},
        timeout=30,
    )
    assert (upload.status_code, upload.json()["filename"]) == (200, "test.png"), upload.text
    assert requests.get(upload.json()["url"], timeout=10).content == buffer.getvalue()
    flower = requests.get(
        f"{values['FLOWER_URL']}/healthcheck",
        timeout=10,
        auth=tuple(values["FLOWER_BASIC_AUTH"].split(":", 1)),
    )
    assert flower.ok

    started = descendants(demo.pid)
    assert len(started) >= 5, started  # redis, moto, web (+ its workers), worker, Flower
    celery = [p for p in started if b"celery" in cmdline(p) and b" worker " in b" " + cmdline(p) + b" "]
    assert celery and all(b"MALLOC_ARENA_MAX=2" in environ(p) for p in celery)  # the launcher's bound
    os.kill(demo.pid, signum)
    demo.wait(90)
    survivors = wait_all_gone(started, 10)
    for pid in survivors:  # leave the machine clean even when the sandbox did not
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert survivors == set()
    assert not env_file.exists()
