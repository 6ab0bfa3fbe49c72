"""The worker process: Celery tasks (thin shells over `workers.jobs`), the entry point and the
launcher, start/stop lifecycle with the heartbeat, and the reaper. The only package in workers/
that imports Celery."""
