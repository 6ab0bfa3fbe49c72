"""The web tier under slow clients and held polls, over real sockets against the Procfile's web
process: 64 connections trickling headers or bodies and 200 polls held open for one job cost
no worker, so /healthz and other polls keep answering; the held polls all answer the moment
the job ends."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest
import redis
import requests

from scripts import devstack
from tasks.exports.states import JobState
from tasks.exports.store import ExportJobStore
from tests.helpers import export_body
from tests.integration.conftest import finish_job, held_polls

pytestmark = pytest.mark.integration
PATH = "/resource/v1/i/export-to-s3dir"
TRICKLERS, HELD = 64, 200
GENEROUS_S = 5.0  # bounds for "answers": far above the 1 s the issue asks, so load cannot flake it


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    return sock


class Tricklers:
    """Connections sending one byte every 100 ms: half still in their headers, half in a body."""

    def __init__(self, base: str, count: int) -> None:
        body = b'{"SessionId": "' + b"x" * 4000 + b'"}'
        headers = f"POST {PATH} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        with_body = (headers + f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.pending: list[tuple[socket.socket, bytes]] = []
        for i in range(count):
            sock = connect(base)
            if i % 2:  # the body trickles: its headers go at once
                sock.sendall(with_body)
                self.pending.append((sock, body))
            else:
                self.pending.append((sock, with_body + body))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        offset = 0
        while not self.stop.wait(0.1):
            for sock, data in self.pending:
                sock.sendall(data[offset : offset + 1])
            offset += 1

    def all_connected(self) -> bool:
        """No trickler was answered or dropped: the server still waits on every one of them."""
        for sock, _ in self.pending:
            sock.setblocking(False)
            try:
                if sock.recv(1, socket.MSG_PEEK) == b"":
                    return False
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
        return True

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for sock, _ in self.pending:
            sock.close()


def raw_post(base: str, body: dict[str, Any]) -> socket.socket:
    data = json.dumps(body).encode()
    sock = connect(base)
    head = f"POST {PATH} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nConnection: close\r\n"
    sock.sendall(head.encode() + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return sock


def read_answer(sock: socket.socket) -> dict[str, Any]:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    sock.close()
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    answer: dict[str, Any] = json.loads(body)
    return answer


def only_job(jobs: ExportJobStore) -> str:
    (job_id,) = jobs.active_ids()
    return job_id


def test_healthz_and_polls_answer_under_tricklers_and_held_polls(
    quiet_web: tuple[str, redis.Redis], session_id: str
) -> None:
    base, client = quiet_web
    jobs = ExportJobStore(client)
    client.flushdb()
    done_body = export_body(session_id, "alice", 1_700_000_000_000, 2000, LivePath="live/slow-done")
    requests.post(base + PATH, json=done_body, headers={"Prefer": "wait=0"}, timeout=GENEROUS_S)
    finish_job(jobs, only_job(jobs))
    held_body = export_body(session_id, "alice", 1_700_000_000_000, 2000, LivePath="live/slow-held")
    first = requests.post(base + PATH, json=held_body, headers={"Prefer": "wait=0"}, timeout=GENEROUS_S)
    assert first.json()["ErrorCode"] == 1
    job_id = only_job(jobs)

    tricklers = Tricklers(base, TRICKLERS)
    held: list[socket.socket] = []
    try:
        held = [raw_post(base, held_body) for _ in range(HELD)]
        devstack.wait_for(lambda: held_polls(base) == HELD, "200 held polls", 30)

        health = requests.get(base + "/healthz", timeout=GENEROUS_S)
        ready = requests.post(base + PATH, json=done_body, timeout=GENEROUS_S)
        quick = requests.post(base + PATH, json=held_body, headers={"Prefer": "wait=0"}, timeout=GENEROUS_S)
        assert health.json() == {"status": "ok"}
        assert ready.json()["ErrorCode"] == 5 and ready.json()["VideoPath"]
        assert quick.json()["ErrorCode"] == 1
        assert tricklers.all_connected()  # answered while every trickler still holds its connection
        assert held_polls(base) == HELD  # and while all 200 polls are held

        finish_job(jobs, job_id)
        answers = [read_answer(sock) for sock in held]
        assert [a["ErrorCode"] for a in answers] == [5] * HELD  # every held poll woke with the clip
        record = jobs.get(job_id)
        assert record is not None and record.state is JobState.DONE
    finally:
        tricklers.close()
        for sock in held:
            sock.close()
