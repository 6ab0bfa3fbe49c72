"""One job as plain functions, runnable without Celery: the export pipeline (index, fetch, cut,
upload), one attempt of an export against its job record, progress, and restores. May import
every other workers/ package except `runtime`, and `tasks/`."""
