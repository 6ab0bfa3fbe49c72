"""The clients one web process shares between requests, made once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from flask import current_app

from app.auth import RedisSessions, SignedSessions
from tasks.exports.store import ExportJobStore
from tasks.platform.registry import WorkerView
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore


@dataclass
class Services:
    settings: Settings
    redis: redis.Redis
    jobs: ExportJobStore
    store: ObjectStore
    celery: Celery
    sessions: SignedSessions | RedisSessions
    workers: WorkerView


def services() -> Services:
    found: Services = current_app.extensions["resourced"]
    return found
