"""Configuration is read in one place: tasks/platform/settings.py. Anything else that read the environment
would be a setting an operator cannot find, with no validation and no documented default."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.platform.settings import ConfigError, Settings
from workers.runtime.flower import credentials_problem

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("app", "tasks", "workers", "deploy")


def environment_reads(path: Path) -> list[int]:
    """Lines that touch os.environ / os.getenv / os.putenv, however imported."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "putenv", "environb"}) or (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and {a.name for a in node.names} & {"environ", "getenv", "putenv", "environb"}
        ):
            lines.append(node.lineno)
    return lines


def test_nothing_but_settings_reads_the_environment() -> None:
    found = {
        str(path.relative_to(ROOT)): environment_reads(path)
        for package in SHIPPED
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ROOT / "tasks" / "platform" / "settings.py"
    }
    assert {k: v for k, v in found.items() if v} == {}


def test_the_check_catches_a_read() -> None:
    tree = ROOT / "tasks" / "platform" / "settings.py"
    assert environment_reads(tree), "the scanner must see settings.py's own reads"


@pytest.mark.parametrize(
    ("env", "check"),
    [
        ({}, lambda s: s.check_web()),
        ({"RESOURCED_SECRET_KEY": "short"}, lambda s: s.check_web()),
        ({"RESOURCED_CALLBACK_SECRET": ""}, lambda s: s.check_worker(("export.copy", "restore"))),
        ({"RESOURCED_CALLBACK_SECRET": "plain"}, lambda s: s.check_worker(("callback",))),
    ],
)
def test_missing_secrets_are_configuration_errors(env: dict[str, str], check: object) -> None:
    with pytest.raises(ConfigError):
        check(Settings.from_env(env))  # type: ignore[operator]


def test_an_encode_only_worker_needs_no_callback_secret() -> None:
    """Only a worker that delivers callbacks needs their secret: the same settings pass for an
    encode-only worker and stop one that serves the callback or restore queue."""
    settings = Settings.from_env({})
    settings.check_worker(("export.cpu",))  # passes
    for queues in (("export.cpu", "callback"), ("restore",)):
        with pytest.raises(ConfigError, match="RESOURCED_CALLBACK_SECRET"):
            settings.check_worker(queues)


def run_entry(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_web_without_its_secret_stops_with_one_line() -> None:
    out = run_entry("app.wsgi", {"RESOURCED_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "RESOURCED_SECRET_KEY" in lines[0], out.stderr


def test_worker_without_the_callback_secret_stops_with_one_line() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "workers.runtime.launch"],
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "RESOURCED_REDIS_URL": "redis://127.0.0.1:1/0",
        },
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("resourced: configuration error:"), out.stderr
    assert "RESOURCED_CALLBACK_SECRET" in lines[0]


def test_malformed_number_stops_with_one_line() -> None:
    out = run_entry("workers.runtime.celery_worker", {"RESOURCED_PREFETCH_SEGMENTS": "many"})
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "resourced: configuration error: RESOURCED_PREFETCH_SEGMENTS must be an integer, got 'many'"
    ]


@pytest.mark.parametrize("value", ["", "admin", "admin:", ":pw", "admin:pw,:", "admin:pw,ops:", "a:b, :c"])
def test_flower_refuses_any_empty_credential(value: str) -> None:
    assert credentials_problem(Settings(flower_basic_auth=value)) is not None


def test_flower_accepts_a_list_of_credentials() -> None:
    assert credentials_problem(Settings(flower_basic_auth="admin:pw,ops:s3cret")) is None


def test_unknown_pdt_zone_stops_the_worker_with_one_line() -> None:
    out = run_entry("workers.runtime.celery_worker", {"RESOURCED_PDT_ZONE": "Asia/Atlantis"})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "RESOURCED_PDT_ZONE" in lines[0] and "Asia/Atlantis" in lines[0], out.stderr
