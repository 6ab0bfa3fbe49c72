"""What runs on worker nodes: the archive index, the PyAV pipeline, S3 transfer.

Plain functions and small classes, runnable and testable without Celery; only
`celery_tasks`, `celery_worker` and `lifecycle` know about Celery.
"""
