"""The client SDK's wait: a web tier restarting or answering 503 for a moment is waited out, as
TimeWait and Retry-After say; a real failure still raises its typed error."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from app import client as client_module
from app.client import Client, ExportFailed

READY = {"ErrorCode": 5, "VideoPath": "v", "ImagePath": "i", "S3Dir": "d", "Version": "1", "LackLength": 0}


def scripted(monkeypatch: pytest.MonkeyPatch, answers: list[Any]) -> Client:
    client = Client("http://resourced.test", "session", "alice")
    monkeypatch.setattr(client_module, "RECONNECT_WAIT_S", 0.01)

    def export_request(
        body: dict[str, Any], hold_s: float = 0, path: str = ""
    ) -> tuple[int, dict[str, Any], float]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(client, "export_request", export_request)
    return client


def test_a_restart_and_a_503_are_waited_out(monkeypatch: pytest.MonkeyPatch) -> None:
    answers: list[Any] = [
        requests.ConnectionError("connection refused"),
        (503, {"ErrorCode": 6, "ErrorMessage": "service temporarily unavailable: redis"}, 0.01),
        (200, {"ErrorCode": 1, "TimeWait": 1}, 0.01),
        (200, READY, 0),
    ]
    client = scripted(monkeypatch, answers)
    result = client.export(live_path="live/cam", start_pos=1, duration=1000, storage_info="e30=")
    assert result.video_url == "v" and answers == []


def test_a_failed_export_still_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    client = scripted(monkeypatch, [(500, {"ErrorCode": 6, "ErrorMessage": "internal error"}, 1)])
    with pytest.raises(ExportFailed):
        client.export(live_path="live/cam", start_pos=1, duration=1000, storage_info="e30=")


def test_an_unreachable_service_gives_up_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    client = scripted(monkeypatch, [requests.ConnectionError("refused")] * 1000)
    with pytest.raises(client_module.ResourcedError, match="unreachable"):
        client.export(live_path="live/cam", start_pos=1, duration=1000, storage_info="e30=", timeout_s=0.05)
