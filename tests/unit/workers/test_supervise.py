"""The launcher's restart policy, on real child processes: one that dies is started again after
a backoff, a stop request (or SIGTERM) ends it and the launcher at once, a deliberate or
configuration exit is not retried."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from workers.runtime.supervise import Backoff, Supervisor, describe_exit, exit_code

ROOT = Path(__file__).resolve().parents[3]
QUICK = Backoff(first_s=0.05, max_s=0.2, healthy_after_s=60)

# A child that notes each start in a file, then ends with the status it is given.
DIES = "import sys; open(sys.argv[1], 'a').write('start\\n'); sys.exit(int(sys.argv[2]))"
# A child that notes its pid, notes SIGTERM when it gets one, and otherwise waits a minute.
SERVES = """
import os, signal, sys, time
log = sys.argv[1]
def on_term(*_):
    open(log, 'a').write('term\\n')
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
open(log, 'a').write(f'start {os.getpid()}\\n')
time.sleep(60)
"""


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_until(check: object, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_backoff_doubles_to_its_cap() -> None:
    backoff = Backoff(first_s=1, max_s=30)
    assert [backoff.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_exit_reasons_name_the_signal() -> None:
    assert describe_exit(1) == "exit status 1"
    assert describe_exit(-9) == "killed by SIGKILL"
    assert (exit_code(1), exit_code(-15)) == (1, 143)  # as a shell reports a signalled child


def test_a_child_that_dies_is_started_again_until_a_stop_is_asked(tmp_path: Path) -> None:
    log = tmp_path / "starts"
    supervisor = Supervisor([sys.executable, "-c", DIES, str(log), "1"], dict(os.environ), QUICK)
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(supervisor.run()))
    runner.start()
    try:
        wait_until(lambda: len(lines(log)) >= 3)
    finally:
        supervisor.request_stop()
        runner.join(5)
    assert not runner.is_alive(), "a stop request did not end the supervisor"
    assert supervisor.restarts >= 2
    # The last child's status: it died (1), or the stop found it just started (SIGTERM).
    assert result in ([1], [-signal.SIGTERM])
    starts = len(lines(log))
    time.sleep(0.3)  # longer than the backoff: nothing is started after the stop
    assert len(lines(log)) == starts


@pytest.mark.parametrize("status", [0, 2])
def test_a_deliberate_or_configuration_exit_is_not_retried(tmp_path: Path, status: int) -> None:
    log = tmp_path / "starts"
    supervisor = Supervisor([sys.executable, "-c", DIES, str(log), str(status)], dict(os.environ), QUICK)
    assert supervisor.run() == status
    assert lines(log) == ["start"]


def test_a_killed_child_is_restarted_and_sigterm_stops_child_and_launcher_promptly(tmp_path: Path) -> None:
    """As the Procfile runs it: the launcher in its own process, signalled alone."""
    log = tmp_path / "child"
    launcher = (
        "import os, sys\n"
        "from workers.runtime.supervise import Backoff, Supervisor\n"
        f"s = Supervisor([sys.executable, '-c', {SERVES!r}, {str(log)!r}], dict(os.environ),"
        " Backoff(first_s=0.05, max_s=0.2))\n"
        "s.install_signal_handlers()\n"
        "sys.exit(s.run())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", launcher], env=env, cwd=ROOT)
    try:
        wait_until(lambda: len(lines(log)) == 1)
        first_pid = int(lines(log)[0].split()[1])
        os.kill(first_pid, signal.SIGKILL)  # as an OOM kill, or Celery's "Unrecoverable error"
        wait_until(lambda: len(lines(log)) == 2)
        assert lines(log)[1].startswith("start ") and lines(log)[1] != lines(log)[0]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0  # the child's own status after its clean stop
        assert lines(log)[2:] == ["term"]  # it was told, and not started again
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
