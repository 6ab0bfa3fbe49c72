"""`python -m workers.runtime.launch [--gpu]`: start a Celery worker on the queues this node can serve.

It first finds which encoders really work here. A GPU worker without working NVENC (a data
-centre card, or no card) says so and serves the CPU encode queue instead. It then stays Celery's
parent and starts it again if it ever ends unexpectedly (workers/runtime/supervise.py), so a
Redis or broker outage never leaves a node serving nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

from tasks.platform.celery_app import Queue
from tasks.platform.logs import configure_logging
from tasks.platform.settings import USE_NVENC_ENV, environ_with, fail_fast, get_settings
from workers.media.encoder_probe import has_nvenc, working_encoders
from workers.runtime.supervise import Supervisor, exit_code

log = logging.getLogger("workers.runtime.launch")

SHARED_QUEUES = (Queue.EXPORT_COPY, Queue.RESTORE, Queue.CALLBACK, Queue.MAINTENANCE)


def choose_queues(gpu_only: bool, configured: tuple[str, ...], nvenc: bool) -> list[str]:
    if configured:
        return list(configured)
    encode = Queue.EXPORT_GPU if nvenc else Queue.EXPORT_CPU
    if gpu_only:
        return [encode.value]
    return [encode.value, *(q.value for q in SHARED_QUEUES)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gpu", action="store_true", help="serve only GPU encodes (NVENC)")
    parser.add_argument(
        "--concurrency", type=int, default=0, help="worker processes (default: suits the node)"
    )
    parser.add_argument("--name", default="", help="worker name (default: role@hostname)")
    args, extra = parser.parse_known_args(argv)
    fail_fast(get_settings)
    settings = get_settings()
    if not args.gpu:  # its queues do not depend on the probe: a missing secret stops it first
        fail_fast(lambda: settings.check_worker(choose_queues(False, settings.worker_queues, False)))
    configure_logging("launcher", settings.log_level)
    nvenc = has_nvenc()
    if args.gpu and not nvenc:
        log.warning(
            "no working NVENC on this node (data-centre GPUs have none): serving CPU encodes instead",
            extra={"encoders": working_encoders()},
        )
    queues = choose_queues(args.gpu, settings.worker_queues, nvenc)
    fail_fast(lambda: settings.check_worker(queues))
    if args.concurrency or settings.worker_concurrency:
        concurrency = args.concurrency or settings.worker_concurrency
    elif args.gpu and nvenc:
        concurrency = settings.gpu_max_sessions  # NVENC caps concurrent sessions per card
    else:
        concurrency = max(2, os.cpu_count() or 2)  # copies wait on I/O; encodes thread internally
    role = "gpu" if args.gpu else "worker"
    name = args.name or f"{role}-{os.getpid()}@{socket.gethostname()}"
    log.info(
        "starting worker",
        extra={"queues": queues, "concurrency": concurrency, "encoders": working_encoders()},
    )
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.runtime.celery_worker",
        "worker",
        "-Q",
        ",".join(queues),
        "--concurrency",
        str(concurrency),
        "--hostname",
        name,
        "--loglevel",
        settings.log_level,
        "-E",
        *extra,
    ]
    sys.stdout.flush()
    # This worker's processes encode with NVENC: the decision travels to them in the environment.
    env = environ_with(**{USE_NVENC_ENV: "1" if args.gpu and nvenc else "0", **settings.worker_process_env()})
    supervisor = Supervisor(command, env)
    supervisor.install_signal_handlers()
    sys.exit(exit_code(supervisor.run()))


if __name__ == "__main__":
    main()
