"""Bytes between S3 and the worker: segments fetched ahead in parallel, and the MP4 uploaded
while it is written. May import `workers.archive`, `workers.media` and `tasks/`."""
