"""gunicorn settings for the web process (the Procfile passes them with -c).

prometheus-client's multiprocess mode, so /metrics sums the requests of every gunicorn
worker; the directory must be set before the app (and prometheus-client) is imported.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from tasks.platform.settings import MAX_LONG_POLL_S, METRICS_DIR_ENV, Settings, fail_fast, set_default_env

fail_fast(lambda: Settings.from_env().check_web())  # a bad setting stops gunicorn with one line
settings = Settings.from_env()
set_default_env(METRICS_DIR_ENV, tempfile.mkdtemp(prefix="resourced-metrics-"))


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# gevent workers: every connection is a greenlet, so a poll held open for its job (long
# polling, app/api/long_poll.py) or a client trickling its headers or body parks a greenlet and
# costs no worker; with sync workers eight slow clients took /healthz down. gunicorn's gevent
# worker monkey-patches the process before the app is imported, so redis-py and boto3 yield
# too. Processes, not threads, for the CPU-bound poll path: threads of one process contend for
# the GIL (measured: 4x1 sync gave p99 13 ms where 2x4 threads gave 21 ms on 2 cores).
worker_class = settings.web_worker_class
worker_connections = settings.web_connections  # per process: held polls + slow clients
# No keep-alive, as the sync workers had none: on a kept-alive connection the worker must read
# and discard the unread rest of a refused oversized body before the next request, and a flood
# of those starved valid polls (measured: 33-57 polls/s vs 250-680 with sync; with keep-alive
# off 260-440). Clients poll seconds apart, so a connection per poll costs them nothing.
keepalive = settings.web_keepalive
# One gevent process per core: its greenlets already overlap every wait, and more processes only
# contend for the cores (measured on 2 cores: 2 processes 1,992 polls/s p99 11 ms, 3 gave 1,988/s
# p99 14 ms, 4 gave 1,868/s p99 16 ms). Sync workers need two per core to overlap Redis round trips.
per_core = 1 if settings.web_worker_class == "gevent" else 2
workers = settings.web_concurrency or per_core * (os.cpu_count() or 1)
threads = settings.web_threads
timeout = 30  # a worker that does not check in for this long is restarted (not a request limit)
# A restart lets held polls finish: longer than the longest hold (MAX_LONG_POLL_S, 25 s).
graceful_timeout = int(MAX_LONG_POLL_S) + 5
# gunicorn >= 24 opens a control socket under the working directory by default; nothing here
# uses it, and under a read-only root (k8s/api.yaml) or ProtectSystem=strict (systemd) it only
# logs a permission error at every start. Older gunicorns ignore the name.
control_socket_disable = True
# gunicorn's largest request line (its default is 4094): a long query (a listing's cursor, say)
# then reaches the app, which refuses an over-long value as JSON ErrorCode 2 naming it. A line
# over this is still refused by gunicorn itself (HTTP 414, its own HTML): docs/api.md says so.
limit_request_line = 8190
