"""Entry point for `celery -A workers.runtime.celery_worker worker`: the app with the tasks bound."""

from tasks.platform.celery_app import create_celery
from tasks.platform.logs import configure_logging
from tasks.platform.settings import fail_fast, get_settings
from workers.runtime.celery_tasks import register_restore_tasks, register_tasks
from workers.runtime.export_callbacks import register_export_callback_task
from workers.runtime.lifecycle import connect_worker_signals
from workers.runtime.spans_task import register_spans_task

fail_fast(get_settings)  # a malformed setting stops the worker with one line
configure_logging("worker", get_settings().log_level)
celery = create_celery(get_settings())
register_tasks(celery, get_settings())
register_restore_tasks(celery, get_settings())
register_export_callback_task(celery, get_settings())
register_spans_task(celery)
connect_worker_signals(celery)
