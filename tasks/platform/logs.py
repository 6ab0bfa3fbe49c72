"""Structured JSON logs with the request id and job id bound once and carried on every line."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str] = ContextVar("request_id", default="")
job_id: ContextVar[str] = ContextVar("job_id", default="")


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = request_id.get()
        if not getattr(record, "job_id", ""):
            record.job_id = job_id.get()
        return True


def configure_logging(process: str, level: str = "INFO") -> None:
    """JSON lines on stderr; idempotent, so every entry point may call it."""
    root = logging.getLogger()
    if any(getattr(h, "_resourced", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(job_id)s",
            static_fields={"process_role": process},
        )
    )
    handler.addFilter(ContextFilter())
    handler._resourced = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
