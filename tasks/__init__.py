"""The contract between the HTTP edge (app/) and the worker nodes (workers/).

Both sides import this package; it imports neither. It holds the Celery app, task names and
queues, the job spec and its idempotency key, the Redis key layout, the job-status store and
the leases that fence export attempts.
"""
