"""`make serve`'s .demo/env hands a second shell what a client needs, the webhook secret included."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import demo


def test_the_sandbox_env_carries_the_callback_signing_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RESOURCED_CALLBACK_SECRET", raising=False)
    env = demo.service_env("redis://127.0.0.1:1/0", "http://127.0.0.1:2", tmp_path)
    assert env["RESOURCED_CALLBACK_SECRET"].startswith("whsec_")  # the one the workers sign with
    assert "RESOURCED_CALLBACK_SECRET" in demo.SECOND_SHELL and set(demo.SECOND_SHELL) <= set(env)
    demo.write_env_file(tmp_path / "env", {name: env[name] for name in demo.SECOND_SHELL})
    assert (
        f"export RESOURCED_CALLBACK_SECRET={env['RESOURCED_CALLBACK_SECRET']}\n"
        in (tmp_path / "env").read_text()
    )


def test_a_callback_secret_given_to_the_sandbox_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESOURCED_CALLBACK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    env = demo.service_env("redis://x", "http://y", tmp_path)
    assert env["RESOURCED_CALLBACK_SECRET"] == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
