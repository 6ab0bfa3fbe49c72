"""The contract between the HTTP edge (app/) and the worker nodes (workers/).

Both sides import this package; it imports neither. One package per domain:
- `platform/`: settings (the one place that reads the environment), the Redis key layout,
  logs, metrics, the Celery app and queues, the worker registry, signed webhook deliveries;
- `exports/`: the export job's spec, its state machine (states and atomic transitions),
  leases, events, estimates and outcomes;
- `tenancy/`: ownership and claims of S3 keys, client-supplied key rules, the image store,
  rate limits;
- `restore/`: Glacier restore job records;
- `storage/`: the one place that talks to S3.
"""
