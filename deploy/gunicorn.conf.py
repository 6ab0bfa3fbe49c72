"""gunicorn settings for the web process (the Procfile passes them with -c).

prometheus-client's multiprocess mode, so /metrics sums the requests of every gunicorn
worker; the directory must be set before the app (and prometheus-client) is imported.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="resourced-metrics-"))


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# Processes, not threads: the poll path is CPU-bound Python, and threads of one process
# contend for the GIL (measured: 4x1 gives p99 13 ms where 2x4 gives 21 ms on 2 cores).
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1)))
threads = int(os.environ.get("WEB_THREADS", 1))
timeout = 30
graceful_timeout = 20
