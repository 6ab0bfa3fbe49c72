"""Cross-cutting plumbing both sides share: settings (the one place that reads the environment),
the Redis key layout, logs, metrics, the Celery app and its queues, the worker registry, and
signed webhook deliveries.
"""
