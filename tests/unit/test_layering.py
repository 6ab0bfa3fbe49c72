"""The import rules of the layout: app/ is the HTTP edge, tasks/ the contract, workers/ the
media side. A violation here is how media code creeps into the web process."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CELERY_AWARE = {"workers/celery_tasks.py", "workers/celery_worker.py", "workers/lifecycle.py"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("app", {"workers", "av", "numpy"}), ("tasks", {"app", "workers", "av"}), ("workers", {"app", "flask"})],
)
def test_packages_import_only_downwards(package: str, forbidden: set[str]) -> None:
    offenders = {str(p.relative_to(ROOT)): imports(p) & forbidden for p in modules(package)}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_the_task_shell_of_workers_knows_celery() -> None:
    knowing = {str(p.relative_to(ROOT)) for p in modules("workers") if "celery" in imports(p)}
    assert knowing <= CELERY_AWARE
