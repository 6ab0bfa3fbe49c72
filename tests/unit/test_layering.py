"""The import rules of the layout: app/ is the HTTP edge, tasks/ the contract, workers/ the
media side. A violation here is how media code creeps into the web process."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER_LAYERS = ("archive", "media", "transfer", "jobs", "runtime")  # each may import those to its left


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


def worker_imports(path: Path) -> set[str]:
    """The workers/ subpackages a module imports."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "workers":  # `from workers import media` names the subpackage
                names = [f"workers.{a.name}" for a in node.names]
        found.update(n.split(".")[1] for n in names if n.startswith("workers.") and n.count(".") >= 1)
    return found


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import workers.media.remux", {"media"}),
        ("from workers.media import remux", {"media"}),
        ("from workers import media, errors", {"media", "errors"}),
        ("from workers.errors import ExportError", {"errors"}),
        ("import workers", set()),
    ],
)
def test_every_import_form_of_a_worker_subpackage_is_seen(
    tmp_path: Path, source: str, expected: set[str]
) -> None:
    module = tmp_path / "module.py"
    module.write_text(source + "\n")
    assert worker_imports(module) == expected


def test_only_the_runtime_of_workers_knows_celery() -> None:
    knowing = {str(p.relative_to(ROOT)) for p in modules("workers") if "celery" in imports(p)}
    assert all(k.startswith("workers/runtime/") for k in knowing), knowing


@pytest.mark.parametrize("layer", WORKER_LAYERS)
def test_worker_packages_import_only_to_their_left(layer: str) -> None:
    allowed = set(WORKER_LAYERS[: WORKER_LAYERS.index(layer) + 1]) | {"errors"}
    offenders = {str(p.relative_to(ROOT)): worker_imports(p) - allowed for p in modules(f"workers/{layer}")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_workers_is_only_subpackages() -> None:
    loose = {p.name for p in (ROOT / "workers").glob("*.py")} - {"__init__.py", "errors.py"}
    assert loose == set(), "workers/ modules belong in a subpackage by what they do"
