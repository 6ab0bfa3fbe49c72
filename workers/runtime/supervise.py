"""Keep one child process (the Celery worker) running: restart it when it ends unexpectedly.

Celery gives up for good on an error it does not class as a connection error ("Unrecoverable
error"): a Redis outage did that through kombu (tasks/platform/kombu_redis.py patches that one),
and the worker process exited; under a Procfile with no restart policy the node then served
nothing until an operator noticed. The launcher therefore stays the parent: a child
that dies (any status but 0, or killed by a signal) is started again after a backoff (1 s,
doubling to 30 s, starting over once a child has run a minute), every restart logged with why.
SIGTERM and SIGINT stop the child (Celery's warm shutdown, which lets running exports finish)
and then the launcher, at once and without a restart; SIGQUIT asks Celery for a cold shutdown.
A child that exits 0 by itself was asked to (`celery control shutdown`): that is respected; one
that exits 2 (a configuration error, tasks.platform.settings.fail_fast) or 64 (Celery's usage
error) would fail the same way again: the launcher ends with it instead of looping.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger(__name__)

FINAL_STATUSES = {0: "asked to stop", 2: "configuration error", 64: "usage error"}

Spawn = Callable[[Sequence[str], dict[str, str]], subprocess.Popen]


@dataclass(frozen=True)
class Backoff:
    """How long to wait before restarting a child that died, after `failures` quick deaths."""

    first_s: float = 1.0
    max_s: float = 30.0
    healthy_after_s: float = 60.0  # a child that ran this long died of something new: start over

    def delay(self, failures: int) -> float:
        return float(min(self.max_s, self.first_s * 2 ** max(0, failures - 1)))


def describe_exit(status: int) -> str:
    """`exit status 1` or `killed by SIGKILL`, for the log line that says why it restarts."""
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def exit_code(status: int) -> int:
    """The launcher's own exit code for a child's status: 128+N for a child killed by signal N,
    as a shell reports it (a negative code would reach the process manager as 256-N)."""
    return status if status >= 0 else 128 - status


def _popen(command: Sequence[str], env: dict[str, str]) -> subprocess.Popen:
    # Same process group as the launcher: a process manager that signals or SIGKILLs the group
    # (systemd's default, honcho, Kubernetes' PID namespace) reaches Celery too.
    return subprocess.Popen(list(command), env=env)


class Supervisor:
    """Runs `command` until asked to stop, restarting it as `backoff` says when it dies."""

    POLL_S = 0.1  # how often a backoff wait looks for a stop request (a signal handler sets it)

    def __init__(
        self,
        command: Sequence[str],
        env: dict[str, str],
        backoff: Backoff | None = None,
        spawn: Spawn = _popen,
    ) -> None:
        self.command, self.env, self.backoff, self.spawn = list(command), env, backoff or Backoff(), spawn
        self.stopping = False  # a plain flag: set from signal handlers, no lock to deadlock on
        self.restarts = 0
        self._child: subprocess.Popen | None = None

    def request_stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop for good: pass `sig` to the running child, start no other."""
        self.stopping = True
        child = self._child
        if child is not None and child.returncode is None:
            child.send_signal(sig)

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT become Celery's warm shutdown (SIGINT is not forwarded as SIGINT:
        a terminal's Ctrl-C reaches Celery directly too, and a second SIGINT is Celery's cold
        shutdown, which would kill the running exports); SIGQUIT is passed on as it is."""

        def warm(_signum: int, _frame: FrameType | None) -> None:
            self.request_stop(signal.SIGTERM)

        def cold(_signum: int, _frame: FrameType | None) -> None:
            self.request_stop(signal.SIGQUIT)

        signal.signal(signal.SIGTERM, warm)
        signal.signal(signal.SIGINT, warm)
        signal.signal(signal.SIGQUIT, cold)

    def run(self) -> int:
        """Until stopped, or a child ends with one of FINAL_STATUSES; returns its status."""
        failures = 0
        while True:
            started = time.monotonic()
            self._child = self.spawn(self.command, self.env)
            if self.stopping:  # asked while it was being started: it missed the signal
                self._child.send_signal(signal.SIGTERM)
            status = self._child.wait()
            ran_s = time.monotonic() - started
            if self.stopping:
                log.info("worker stopped", extra={"status": describe_exit(status)})
                return status
            if status in FINAL_STATUSES:
                log.warning(
                    "worker exited: not restarted",
                    extra={"reason": f"{describe_exit(status)} ({FINAL_STATUSES[status]})"},
                )
                return status
            failures = 1 if ran_s >= self.backoff.healthy_after_s else failures + 1
            delay = self.backoff.delay(failures)
            log.error(
                "worker exited unexpectedly: restarting it",
                extra={
                    "reason": describe_exit(status),
                    "ran_s": round(ran_s, 1),
                    "restart_in_s": delay,
                    "quick_failures": failures,
                },
            )
            if self._wait(delay):
                return status
            self.restarts += 1

    def _wait(self, delay_s: float) -> bool:
        """Sleep out a backoff; True if a stop was asked meanwhile."""
        deadline = time.monotonic() + delay_s
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(self.POLL_S, max(0.0, deadline - time.monotonic())))
        return self.stopping
