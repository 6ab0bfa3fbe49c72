"""gunicorn settings for the web process (the Procfile passes them with -c).

prometheus-client's multiprocess mode, so /metrics sums the requests of every gunicorn
worker; the directory must be set before the app (and prometheus-client) is imported.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from tasks.settings import METRICS_DIR_ENV, Settings, fail_fast, set_default_env

fail_fast(lambda: Settings.from_env().check_web())  # a bad setting stops gunicorn with one line
settings = Settings.from_env()
set_default_env(METRICS_DIR_ENV, tempfile.mkdtemp(prefix="resourced-metrics-"))


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# Processes, not threads: the poll path is CPU-bound Python, and threads of one process
# contend for the GIL (measured: 4x1 gives p99 13 ms where 2x4 gives 21 ms on 2 cores).
workers = settings.web_concurrency or 2 * (os.cpu_count() or 1)
threads = settings.web_threads
timeout = 30
graceful_timeout = 20
