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
