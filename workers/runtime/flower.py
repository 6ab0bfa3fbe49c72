"""The Procfile's `flower`: Celery Flower, only with credentials.

Flower shows task arguments and can revoke tasks; served anonymously it is an open door. So
without FLOWER_BASIC_AUTH (`user:password`) this refuses to start, with one line saying why.
Flower reads FLOWER_BASIC_AUTH from the environment itself, so the password never appears in
the process list. Arguments after the module name go to Flower as they are (--port, --address).

Flower runs as this launcher's child in a process group of its own, and the launcher stays in
front of it: SIGTERM, SIGINT, SIGHUP and SIGQUIT sent to the launcher's pid (a supervisor's
stop, `kill PID`, Ctrl-C) are forwarded to Flower's whole group, and the launcher exits with
Flower's status. A Flower that ignores the signal is killed after STOP_GRACE_S; a launcher that
dies without a word (SIGKILL) takes Flower along through the kernel's parent-death signal. So no
`celery flower` outlives the pid an operator or a sandbox knows about. (The worker launcher's
Supervisor, workers/runtime/supervise.py, restarts Celery and keeps it in the launcher's group on
purpose; Flower needs no restarts, but a stop that reaches all of it.)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from types import FrameType

from tasks.platform.settings import ConfigError, Settings

EXIT_NO_CREDENTIALS = 78  # EX_CONFIG: a supervisor should not restart it in a loop
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
STOP_GRACE_S = 10.0  # Flower stops in well under a second; past this it is killed
PR_SET_PDEATHSIG = 1


def credentials_problem(settings: Settings) -> str | None:
    """Flower takes a comma list of `user:password` pairs: every one must have both parts, or an
    empty pair (`admin:pw,:`) would let anyone in with empty credentials."""
    if not settings.flower_basic_auth:
        return "FLOWER_BASIC_AUTH is not set (user:password); Flower does not serve without credentials"
    for pair in settings.flower_basic_auth.split(","):
        user, sep, password = pair.partition(":")
        if not sep or not user.strip() or not password.strip():
            return "FLOWER_BASIC_AUTH must be user:password[,user:password...], with no part empty"
    return None


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the launcher dies, however it dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def run_as_group(args: list[str], grace_s: float = STOP_GRACE_S) -> int:
    """Run `args` in its own process group, forward stop signals to that group, kill it if it
    lingers after one; returns its exit status (128 + signal when a signal ended it)."""
    child = subprocess.Popen(args, start_new_session=True, preexec_fn=_die_with_parent)

    def killer() -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(grace_s)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)

    def forward(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)
        threading.Thread(target=killer, daemon=True).start()

    for signum in FORWARDED:
        signal.signal(signum, forward)
    status = child.wait()
    with contextlib.suppress(ProcessLookupError):  # anything Flower itself left in its group
        os.killpg(child.pid, signal.SIGKILL)
    return 128 - status if status < 0 else status


def main(argv: list[str]) -> int:
    try:
        problem = credentials_problem(Settings.from_env())
    except ConfigError as exc:
        problem = str(exc)
    if problem is not None:
        print(f"flower: refusing to start: {problem}", file=sys.stderr)
        return EXIT_NO_CREDENTIALS
    return run_as_group(
        [sys.executable, "-m", "celery", "-A", "workers.runtime.celery_worker", "flower", *argv]
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
