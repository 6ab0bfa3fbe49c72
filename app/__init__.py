"""The HTTP edge: validates, authenticates, enqueues and reports. No media code lives here."""

from __future__ import annotations

import re
import time
import uuid

import redis
from celery import Celery
from flask import Flask, Response, g, request

from app.auth import make_backend
from app.errors import register_error_handlers
from app.metrics import LATENCY, REQUESTS
from app.services import Services
from tasks.exports.store import ExportJobStore
from tasks.platform import logs
from tasks.platform.celery_app import create_celery
from tasks.platform.logs import configure_logging
from tasks.platform.registry import WorkerView
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")  # a caller's X-Request-Id is kept if it looks like one
REDIS_CONNECTIONS = 64  # per web process; requests beyond it wait up to 2 s for one
MAX_JSON_BODY = 1024 * 1024  # an export request is a few KB; the image bed sets its own limit


def register_services(
    app: Flask,
    settings: Settings,
    redis_client: redis.Redis | None,
    celery: Celery | None,
    store: ObjectStore | None,
) -> Services:
    # A blocking pool: under gevent one process serves hundreds of requests at once (held polls
    # waking together), and redis-py's default pool raises past 100 connections instead of waiting.
    client = redis_client or redis.Redis(
        connection_pool=redis.BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=REDIS_CONNECTIONS,
            timeout=2,
            socket_timeout=2,
            socket_connect_timeout=2,
            health_check_interval=30,
        )
    )
    found = Services(
        settings=settings,
        redis=client,
        jobs=ExportJobStore(client, settings.job_ttl_s),
        store=store or ObjectStore(settings),
        celery=celery or create_celery(settings),
        sessions=make_backend(settings, client),
        workers=WorkerView(client),
    )
    app.extensions["resourced"] = found
    return found


def register_blueprints(app: Flask) -> None:
    from app.api import docs, export, export_jobs, health, imgbed, restore, snapshot, spans

    app.register_blueprint(export.bp)
    app.register_blueprint(export_jobs.bp)
    app.register_blueprint(imgbed.bp)
    app.register_blueprint(restore.bp)
    app.register_blueprint(spans.bp)
    app.register_blueprint(snapshot.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(docs.bp)


def register_request_hooks(app: Flask) -> None:
    """A request id on every log line and response, and a metric per endpoint and answer code."""

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        given = request.headers.get("X-Request-Id", "")
        rid = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        g.request_id = rid
        g.log_token = logs.request_id.set(rid)

    @app.after_request
    def _finish(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        code = ""
        if response.mimetype == "application/json" and not response.is_streamed:
            body = response.get_json(silent=True)
            if isinstance(body, dict):
                code = str(body.get("ErrorCode", body.get("errCode", body.get("code", ""))))
        REQUESTS.labels(endpoint, str(response.status_code), code).inc()
        LATENCY.labels(endpoint).observe(time.perf_counter() - g.get("started", time.perf_counter()))
        response.headers["X-Request-Id"] = g.get("request_id", "")
        return response

    @app.teardown_request
    def _unbind(_: BaseException | None) -> None:
        token = g.pop("log_token", None)
        if token is not None:
            logs.request_id.reset(token)


def create_app(
    settings: Settings | None = None,
    *,
    redis_client: redis.Redis | None = None,
    celery: Celery | None = None,
    store: ObjectStore | None = None,
) -> Flask:
    """The web app; tests pass their own settings and clients, production reads the environment."""
    settings = settings or Settings.from_env()
    configure_logging("web", settings.log_level)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max(MAX_JSON_BODY, settings.imgbed_max_bytes + 64 * 1024)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    register_services(app, settings, redis_client, celery, store)
    register_error_handlers(app)
    register_request_hooks(app)
    register_blueprints(app)
    return app
