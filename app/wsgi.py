"""The WSGI entry point for gunicorn: `gunicorn app.wsgi:app`."""

from app import create_app
from tasks.platform.settings import fail_fast, get_settings

fail_fast(lambda: get_settings().check_web())  # one line and exit, not a traceback per worker
app = create_app(get_settings())
