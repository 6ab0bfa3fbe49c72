"""Worker memory is bounded by settings with documented defaults: Celery replaces a child that
ends a task above the limit or after N tasks, and the launcher caps glibc's malloc arenas."""

from __future__ import annotations

import re
from pathlib import Path

from tasks.platform.celery_app import create_celery
from tasks.platform.settings import Settings

README = (Path(__file__).resolve().parents[2] / "deploy" / "README.md").read_text()


def test_defaults_bound_every_child() -> None:
    conf = create_celery(Settings()).conf
    assert conf.worker_max_memory_per_child == 300 * 1024  # KiB, as Celery counts
    assert conf.worker_max_tasks_per_child == 200
    assert Settings().worker_process_env() == {"MALLOC_ARENA_MAX": "2"}


def test_operators_set_or_turn_off_the_bounds() -> None:
    settings = Settings.from_env(
        {
            "RESOURCED_WORKER_MAX_MEMORY_PER_CHILD_MIB": "512",
            "RESOURCED_WORKER_MAX_TASKS_PER_CHILD": "0",
            "MALLOC_ARENA_MAX": "4",
        }
    )
    conf = create_celery(settings).conf
    assert (conf.worker_max_memory_per_child, conf.worker_max_tasks_per_child) == (512 * 1024, None)
    assert settings.worker_process_env() == {"MALLOC_ARENA_MAX": "4"}
    assert Settings.from_env({"MALLOC_ARENA_MAX": "0"}).worker_process_env() == {}


def test_the_bounds_and_their_defaults_are_documented() -> None:
    for name, default in (
        ("RESOURCED_WORKER_MAX_MEMORY_PER_CHILD_MIB", "300"),
        ("RESOURCED_WORKER_MAX_TASKS_PER_CHILD", "200"),
        ("MALLOC_ARENA_MAX", "2"),
    ):
        assert re.search(rf"`{name}`[^\n]*\b{default}\b", README), name
