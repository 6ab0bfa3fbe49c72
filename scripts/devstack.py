"""Local stand-ins for production parts, started as real processes: redis-server, moto's S3
server, and the Procfile's own entries. The demo and the integration tests both use them."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: object, what: str, timeout_s: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting")
        try:
            if check():  # type: ignore[operator]
                return
        except (OSError, requests.RequestException):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not come up within {timeout_s} s")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGTERM the process group (a shell, gunicorn and its workers alike), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def spawn(args: list[str], env: dict[str, str] | None, log: Path | None) -> subprocess.Popen:
    """Start a process in its own session, its output appended to `log`. The child gets its own
    copy of the log's descriptor, so ours is closed at once."""
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(log.open("ab")) if log else subprocess.DEVNULL
        return subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )


@contextmanager
def redis_server(log: Path | None = None) -> Iterator[str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed: run scripts/bootstrap.sh")
    port = free_port()
    proc = spawn(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], None, log
    )
    try:
        wait_for(lambda: port_open(port), "redis-server", proc=proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc)


class RestartableRedis:
    """A redis-server on a fixed port, to kill and start again mid-test. With `persistent` it
    keeps an append-only file in `directory` (what a deployment needs: deploy/README.md) and
    comes back with its data; without, it comes back empty, as a Redis without persistence does."""

    def __init__(self, directory: Path, log: Path | None = None, persistent: bool = True) -> None:
        self.directory, self.log, self.port = directory, log, free_port()
        self.persistent = persistent
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed: run scripts/bootstrap.sh")
        # appendfsync always: a test kills it right after a write and expects the write back.
        durability = ["yes", "--appendfsync", "always"] if self.persistent else ["no"]
        args = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        args += ["--save", "", "--appendonly", *durability]
        self.proc = spawn(args, None, self.log)
        wait_for(lambda: port_open(self.port), "redis-server", proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill does: no final save, clients cut mid-command."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None


RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # the script itself, not the wrapper that su's


def rabbitmq_binary() -> str | None:
    """The rabbitmq-server start script, or None where RabbitMQ is not installed."""
    if Path(RABBITMQ_SERVER).exists():
        return RABBITMQ_SERVER
    return shutil.which("rabbitmq-server")


@contextmanager
def rabbitmq_server(directory: Path, log: Path | None = None) -> Iterator[str]:
    """A private RabbitMQ node on free ports (AMQP, distribution, its own epmd), with its data,
    logs, cookie and config in `directory`, no plugins; yields its amqp:// URL. A node already
    running on the machine is never touched."""
    exe = rabbitmq_binary()
    if exe is None:
        raise RuntimeError("rabbitmq-server is not installed: run scripts/bootstrap.sh")
    amqp, dist, epmd = free_port(), free_port(), free_port()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "enabled_plugins").write_text("[].\n")
    (directory / "rabbitmq-env.conf").write_text("")  # not the machine's /etc/rabbitmq one
    # Exports run longer than RabbitMQ's default 30 min consumer timeout; acks are late.
    (directory / "rabbitmq.conf").write_text("loopback_users = none\nconsumer_timeout = 7200000\n")
    env = {
        **os.environ,
        "HOME": str(directory),  # the Erlang cookie lives here
        "RABBITMQ_CONF_ENV_FILE": str(directory / "rabbitmq-env.conf"),
        "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
        "RABBITMQ_NODENAME": f"resourced{amqp}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(amqp),
        "RABBITMQ_DIST_PORT": str(dist),
        "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
        "RABBITMQ_LOG_BASE": str(directory / "log"),
        "RABBITMQ_PID_FILE": str(directory / "rabbitmq.pid"),
        "ERL_EPMD_PORT": str(epmd),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
    }
    proc = spawn([exe], env, log)
    url = f"amqp://guest:guest@127.0.0.1:{amqp}//"
    try:
        wait_for(lambda: _amqp_ready(url), "rabbitmq-server", timeout_s=90, proc=proc)
        yield url
    finally:
        stop(proc, 30)
        epmd_exe = shutil.which("epmd")
        if epmd_exe:  # erl started a private epmd for the node; it outlives the node otherwise
            subprocess.run(
                [epmd_exe, "-port", str(epmd), "-kill"],
                env={**os.environ, "ERL_EPMD_PORT": str(epmd)},
                capture_output=True,
                check=False,
            )


def _amqp_ready(url: str) -> bool:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=1) as conn:
            conn.ensure_connection(max_retries=1)
            return True
    except Exception:
        return False


@contextmanager
def moto_s3(log: Path | None = None) -> Iterator[str]:
    """moto's S3 server over real HTTP: presigned URLs, multipart uploads and all."""
    port = free_port()
    proc = spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], None, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(url + "/moto-api/", timeout=1).ok, "moto server", proc=proc)
        yield url
    finally:
        stop(proc)


def procfile_command(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            return command.strip()
    raise KeyError(f"no {name!r} entry in the Procfile")


def start_procfile(name: str, env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    """Run a Procfile entry as written, the way foreman/honcho do: through a shell."""
    full_env = {**os.environ, **env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return spawn(["/bin/sh", "-c", f"exec {procfile_command(name)}"], full_env, log)


def wait_http_ok(url: str, timeout_s: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    wait_for(lambda: requests.get(url, timeout=1).ok, url, timeout_s, proc)


def wait_workers(redis_url: str, count: int = 1, timeout_s: float = 60) -> None:
    """Until `count` workers announce themselves in the registry (they are then consuming)."""
    import redis

    from tasks.platform.registry import live_workers

    client = redis.Redis.from_url(redis_url)
    wait_for(lambda: len(live_workers(client)) >= count, f"{count} worker(s)", timeout_s)


@contextmanager
def service(
    env: dict[str, str], log_dir: Path | None = None, tag: str = "", workers: int = 1
) -> Iterator[str]:
    """The Procfile's web and `workers` workers, as an operator starts them; yields the web's URL.
    A local stack signs callbacks with a throwaway secret unless `env` brings one (workers that
    take restore jobs refuse to start without it)."""
    env = {"RESOURCED_CALLBACK_SECRET": local_callback_secret(), **env}

    def log(role: str) -> Path | None:
        return log_dir / f"{role}{'-' + tag if tag else ''}.log" if log_dir else None

    port = free_port()
    procs = [start_procfile("web", {**env, "PORT": str(port)}, log("web"))]
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http_ok(base + "/healthz", proc=procs[0])
        procs += [
            start_procfile("worker", env, log(f"worker{i}" if workers > 1 else "worker"))
            for i in range(workers)
        ]
        if workers:
            wait_workers(env["RESOURCED_REDIS_URL"], workers)
        yield base
    finally:
        for proc in reversed(procs):
            stop(proc, 20)


def local_callback_secret() -> str:
    """A Standard Webhooks secret (whsec_ + base64) for a stack that lives as long as a demo."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def issue_session(env: dict[str, str], user: str) -> str:
    """A SessionId from the `resourced` command, as an operator gets one."""
    out = subprocess.run(
        [str(BIN / "resourced"), "session", "issue", "--user", user],
        env={**os.environ, **env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


BENCH_BUCKETS = ("bench-archive", "bench-exports")


@dataclass(frozen=True)
class BenchStack:
    work: Path  # a temporary directory, gone afterwards
    env: dict[str, str]  # the documented variables for the Procfile's processes
    s3: Any  # a boto3 client of the local S3, with BENCH_BUCKETS made


@contextmanager
def bench_stack() -> Iterator[BenchStack]:
    """A private redis-server and moto S3 server with the benchmarks' two buckets, and the
    environment the Procfile's processes need to use them; everything goes away afterwards."""
    import boto3

    with tempfile.TemporaryDirectory() as tmp, redis_server() as redis_url, moto_s3() as s3_url:
        env = {
            "RESOURCED_REDIS_URL": redis_url,
            "RESOURCED_S3_ENDPOINT_URL": s3_url,
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_DEFAULT_REGION": "us-east-1",
            "HOST": "127.0.0.1",
            "RESOURCED_SECRET_KEY": "bench-secret-key-0123456789abcdef",
            "RESOURCED_CALLBACK_SECRET": local_callback_secret(),
            "RESOURCED_WORK_DIR": tmp,
            "RESOURCED_ALLOWED_BUCKETS": ",".join(BENCH_BUCKETS),
        }
        s3 = boto3.client(
            "s3",
            endpoint_url=s3_url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",  # noqa: S106 - moto's local server takes any key
        )
        for bucket in BENCH_BUCKETS:
            s3.create_bucket(Bucket=bucket)
        yield BenchStack(Path(tmp), env, s3)
