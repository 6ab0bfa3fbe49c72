"""The callback address filter over IPv6 prefixes that embed IPv4 addresses, the total
delivery deadline against a client that trickles its answer, per-user rate limits, and client
names with invisible format characters."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import fakeredis
import pytest

from tasks.platform.webhooks import DeliveryFailed, UrlRefused, deliver, host_header, resolve_target
from tasks.tenancy import ratelimit
from tasks.tenancy.objectkeys import UnsafeKey, safe_name, safe_path

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize(
    "address",
    [
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254 (cloud metadata)
        "64:ff9b::c0a8:101",  # NAT64 of 192.168.1.1
        "64:ff9b:1::808:808",  # local-use NAT64: any layout, never public
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo
        "::a00:1",  # IPv4-compatible 10.0.0.1
        "::ffff:10.0.0.1",  # IPv4-mapped
        "::1",
    ],
)
def test_ipv6_that_embeds_an_internal_ipv4_is_refused(address: str) -> None:
    with pytest.raises(UrlRefused, match="internal address"):
        resolve_target(f"http://[{address}]/cb", ())


@pytest.mark.parametrize("address", ["2002:808:808::1", "64:ff9b::808:808", "2606:4700:4700::1111"])
def test_public_ipv6_still_passes(address: str) -> None:
    assert resolve_target(f"http://[{address}]/cb", ()).address == address


@pytest.fixture
def trickling_server() -> Iterator[int]:
    """Answers one byte of a valid HTTP response every 0.4 s: no single read ever times out."""
    server = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            for byte in b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"code": 0}':
                if done.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.4)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    done.set()
    thread.join(5)
    server.close()


def test_delivery_is_cut_at_its_total_deadline(trickling_server: int) -> None:
    url = f"http://127.0.0.1:{trickling_server}/cb"
    with pytest.raises(DeliveryFailed, match="deadline"):
        deliver(url, {"code": 0}, SECRET, ("127.0.0.1",), 1.0, "msg_1")


def test_rate_limit_is_per_user_and_per_window() -> None:
    client = fakeredis.FakeRedis()
    now = 60 * 16_667 + 20.0  # 20 s into a window
    assert [ratelimit.retry_after(client, "t", "alice", 2, now) for _ in range(3)] == [0, 0, 40]
    assert ratelimit.retry_after(client, "t", "bob", 2, now) == 0
    assert ratelimit.retry_after(client, "t", "alice", 2, now + 60) == 0  # the next window


@pytest.mark.parametrize(
    "name", ["x\u202egnp.exe", "a\u200bb.png", "\ufeffa.png", "a\u2066b", "soft\u00adhyphen"]
)
def test_invisible_format_characters_are_refused(name: str) -> None:
    with pytest.raises(UnsafeKey, match="format characters"):
        safe_name(name)
    with pytest.raises(UnsafeKey, match="format characters"):
        safe_path(f"avatars/{name}")
    assert safe_name("caf\u00e9.png") == "caf\u00e9.png"  # letters of any script are fine


def test_a_slow_resolver_cannot_stretch_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(*args: object, **kwargs: object) -> list[object]:
        time.sleep(1.5)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", 80))]

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    with pytest.raises(UrlRefused, match="did not resolve within"):
        resolve_target("http://slow.example/cb", (), timeout_s=0.2)


@pytest.mark.parametrize("url", ["http://8.8.8.8:0/cb", "https://[2606:4700:4700::1111]:0/cb"])
def test_port_zero_is_refused_not_taken_for_the_default(url: str) -> None:
    with pytest.raises(UrlRefused, match="invalid port"):
        resolve_target(url, ())


def test_an_ipv6_host_header_is_bracketed() -> None:
    assert host_header("2606:4700:4700::1111", 8080) == "[2606:4700:4700::1111]:8080"
    assert host_header("2606:4700:4700::1111", 443) == "[2606:4700:4700::1111]"
    assert host_header("client.example", 80) == "client.example"
