"""One job as plain functions, runnable without Celery: the export pipeline (index, fetch, cut,
upload), one attempt of an export against its job record, the fence around its side effects
(lease keepalive, takeover of earlier attempts' uploads), progress, and restores. May import
every other workers/ package except `runtime`, and `tasks/`."""
