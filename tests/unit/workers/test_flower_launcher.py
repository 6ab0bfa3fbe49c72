"""The Flower launcher stays in front of Flower: a signal to its pid stops Flower's whole group,
a Flower that ignores it is killed, and a launcher killed outright takes Flower along."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.processes import alive, children, descendants, wait_all_gone

# A stand-in for `celery flower` that starts a child of its own, as a server with helpers does.
SERVER = (
    "import signal, subprocess, sys, time\n"
    "IGNORE = {ignore}\n"
    "if IGNORE: signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
    "time.sleep(120)\n"
)


def launch(ignore: bool) -> subprocess.Popen:
    code = (
        "import sys\n"
        "from workers.runtime.flower import run_as_group\n"
        f"sys.exit(run_as_group([sys.executable, '-c', {SERVER.format(ignore=ignore)!r}], grace_s=1.0))\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ})


def started(launcher: subprocess.Popen) -> set[int]:
    deadline = time.monotonic() + 20
    while len(found := descendants(launcher.pid)) < 2:
        assert time.monotonic() < deadline, "the stand-in server did not start"
        time.sleep(0.05)
    time.sleep(0.3)  # the launcher's handlers are in place once its child runs
    return found


@pytest.mark.parametrize(
    ("signum", "ignore"), [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGTERM, True)]
)
def test_a_signal_to_the_launcher_stops_flower_and_its_children(signum: int, ignore: bool) -> None:
    launcher = launch(ignore)
    tree = started(launcher)
    os.kill(launcher.pid, signum)
    launcher.wait(15)
    assert wait_all_gone(tree, 5) == set()


def test_a_killed_launcher_takes_flower_along() -> None:
    """SIGKILL cannot be forwarded: Flower gets the kernel's parent-death signal instead."""
    launcher = launch(False)
    tree = started(launcher)
    flower = children(launcher.pid)
    os.kill(launcher.pid, signal.SIGKILL)
    launcher.wait(5)
    survivors = wait_all_gone(flower, 5)
    for pid in alive(tree):  # the stand-in's own helper is the stand-in's business: clean up
        os.kill(pid, signal.SIGKILL)
    assert flower and survivors == set()
