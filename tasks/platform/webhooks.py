"""Calling clients back: PutRestoreResult deliveries, signed and SSRF-safe.

A callback URL comes from a client, so it must not make the service reach its own network:
only http(s), no credentials in the URL, and every address the host resolves to must be a
public one unless RESOURCED_CALLBACK_ALLOWLIST names it (host or CIDR). The name is resolved
once and the connection pinned to that address (TLS still checks the name), so a second DNS
answer cannot redirect it; redirects are not followed. Deliveries are signed as Standard
Webhooks do it, so a client can verify them with any Standard Webhooks library.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import socket
import ssl
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import certifi
from standardwebhooks.webhooks import Webhook

MAX_RESPONSE_BYTES = 64 * 1024
MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_S = 4.0  # a callback host's DNS can be slowed on purpose by whoever runs it
_resolver = ThreadPoolExecutor(max_workers=8, thread_name_prefix="callback-dns")  # bounds lookups in flight

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRefused(ValueError):
    """The callback URL may not be called (scheme, credentials, or an internal address)."""


class DeliveryFailed(RuntimeError):
    """The client did not acknowledge: a network error, a non-2xx answer, or a non-zero code."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str  # the pinned IP


NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local use, any layout: never public
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d
OWN_V6 = ipaddress.ip_network("::/127")  # :: and ::1 lie in that range but are IPv6's own, not 0.0.0.x


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address carries by a standard mapping, where a gateway or
    tunnel on the path could deliver to that IPv4 address."""
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:  # 2002::/16
        found.append(ip.sixtofour)
    if ip.teredo is not None:  # 2001::/32: (server, client)
        found.extend(ip.teredo)
    if ip in NAT64_WELL_KNOWN or ip in IPV4_COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _public_v4(ip: ipaddress.IPv4Address) -> bool:
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def _public(ip: IpAddress) -> bool:
    if isinstance(ip, ipaddress.IPv4Address):
        return _public_v4(ip)
    if ip in NAT64_LOCAL:
        return False
    inner = embedded_ipv4(ip)
    if ip.ipv4_mapped is not None or ip in NAT64_WELL_KNOWN or ip in IPV4_COMPATIBLE:
        return all(_public_v4(v4) for v4 in inner)  # these reach exactly the embedded IPv4 address
    if not (ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)):
        return False  # Teredo (2001::/32) lands here: Python does not count it as global
    return all(_public_v4(v4) for v4 in inner)  # 6to4 relays deliver to the embedded address


def _judged_as(ip: IpAddress) -> list[IpAddress]:
    """The addresses an allowlist entry is matched against: the address itself and, for the
    forms that reach exactly the IPv4 address they embed (IPv4-mapped, IPv4-compatible, NAT64
    64:ff9b::/96), that IPv4 too, so `::ffff:127.0.0.1` is judged as 127.0.0.1, as the
    denylist judges it (README: an embedded IPv4 is judged by that IPv4)."""
    if (
        isinstance(ip, ipaddress.IPv6Address)
        and ip not in OWN_V6
        and (ip.ipv4_mapped is not None or ip in NAT64_WELL_KNOWN or ip in IPV4_COMPATIBLE)
    ):
        return [ip, *embedded_ipv4(ip)]
    return [ip]


def _allowlisted(host: str, ip: IpAddress, allowlist: tuple[str, ...]) -> bool:
    for entry in allowlist:
        if entry.lower() == host.lower():
            return True
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if any(candidate in network for candidate in _judged_as(ip)):
            return True
    return False


def _getaddrinfo(host: str, port: int, timeout_s: float) -> list[Any]:
    """getaddrinfo with a deadline: it has none of its own, so it runs on a small pool and is
    abandoned (left to the resolver's own timeout) when it takes too long."""
    try:
        return list(
            _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM).result(timeout_s)
        )
    except FutureTimeout as exc:
        raise UrlRefused(f"callback host {host!r} did not resolve within {timeout_s:g} s") from exc


@dataclass(frozen=True)
class CheckedUrl:
    """A callback URL whose form the policy accepts; its host may still need resolving."""

    scheme: str
    host: str
    port: int
    path: str


def _literal_ip(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None


def _refuse_internal(host: str, addresses: list[IpAddress], allowlist: tuple[str, ...]) -> None:
    for ip in addresses:
        if not _public(ip) and not _allowlisted(host, ip, allowlist):
            raise UrlRefused(f"callback host {host!r} resolves to an internal address ({ip})")


def check_url(url: str, allowlist: tuple[str, ...]) -> CheckedUrl:
    """Everything the address policy can judge without DNS: form, scheme, credentials, port,
    and a literal IP address. Request schemas run it beside their other field checks, so a
    refused CallbackUrl is named in the same first answer as every other bad field; only a
    host name's resolution is left to `resolve_target`."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise UrlRefused("callback_url must be a URL of at most 2048 characters")
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise UrlRefused("callback_url must not contain spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise UrlRefused("callback_url must be http or https")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("callback_url must not carry credentials")
    host = parts.hostname
    if not host:
        raise UrlRefused("callback_url has no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise UrlRefused("callback_url has an invalid port") from exc
    if port == 0:
        raise UrlRefused("callback_url has an invalid port")
    literal = _literal_ip(host)
    if literal is not None:
        _refuse_internal(host, [literal], allowlist)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return CheckedUrl(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


def resolve_target(url: str, allowlist: tuple[str, ...], timeout_s: float = RESOLVE_TIMEOUT_S) -> Target:
    """Check a callback URL and pin the address it will be delivered to."""
    checked = check_url(url, allowlist)
    host, port = checked.host, checked.port
    try:
        infos = _getaddrinfo(host, port, max(timeout_s, 0.1))
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlRefused(f"callback host {host!r} does not resolve") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    _refuse_internal(host, addresses, allowlist)
    return Target(checked.scheme, host, port, checked.path, str(addresses[0]))


def signed_headers(secret: str, body: str, message_id: str | None = None) -> dict[str, str]:
    """webhook-id, webhook-timestamp and webhook-signature (v1, HMAC-SHA256 of id.timestamp.body)."""
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    now = datetime.fromtimestamp(int(time.time()), tz=UTC)
    signature = Webhook(secret).sign(message_id, now, body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


def restore_result(
    task_id: str, file_dir: str, files: dict[str, int], code: int, message: str, kind: int = 1
) -> dict[str, Any]:
    """The PutRestoreResult body, field names exactly as the original interface document."""
    return {
        "code": code,
        "message": message,
        "type": kind,
        "task_id": task_id,
        "file_dir": file_dir,
        "file_list_status": [
            {"file_name": name, "file_code": file_code} for name, file_code in files.items()
        ],
    }


class _Watchdog:
    """Cuts a connection at a deadline: shutdown() on a duplicate of its socket wakes any read or
    write blocked on it, so a client that trickles one byte at a time cannot stretch a delivery
    past its total deadline (per-read timeouts alone never fire on a trickle)."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self._dup = sock.dup()
        self.fired = False
        self._timer = threading.Timer(max(seconds, 0.0), self._cut)
        self._timer.daemon = True
        self._timer.start()

    def _cut(self) -> None:
        self.fired = True
        with contextlib.suppress(OSError):
            self._dup.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._timer.cancel()
        self._dup.close()


def _exchange(target: Target, body: bytes, headers: dict[str, str], deadline: float) -> tuple[int, bytes]:
    """One POST to the pinned address, all of it (connect, TLS, request, answer) before `deadline`."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeliveryFailed("no answer from the callback: deadline reached")
    try:
        sock = socket.create_connection((target.address, target.port), timeout=min(remaining, 5.0))
    except OSError as exc:
        raise DeliveryFailed(f"no answer from the callback: {type(exc).__name__}") from exc
    watchdog = _Watchdog(sock, deadline - time.monotonic())
    connection = http.client.HTTPConnection(target.address, target.port)
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        if target.scheme == "https":
            context = ssl.create_default_context(cafile=certifi.where())
            sock = context.wrap_socket(sock, server_hostname=target.host)
        connection.sock = sock
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        raw = response.read(MAX_RESPONSE_BYTES)
        return response.status, raw
    except (OSError, http.client.HTTPException) as exc:
        if watchdog.fired:
            raise DeliveryFailed("no complete answer from the callback within the deadline") from exc
        raise DeliveryFailed(f"no answer from the callback: {type(exc).__name__}") from exc
    finally:
        watchdog.close()
        connection.close()
        sock.close()


def host_header(host: str, port: int) -> str:
    """The Host header: an IPv6 literal in brackets, the port where it is not the default."""
    name = f"[{host}]" if ":" in host else host
    return name if port in (80, 443) else f"{name}:{port}"


def deliver(
    url: str,
    payload: dict[str, Any],
    secret: str,
    allowlist: tuple[str, ...],
    timeout_s: float,
    message_id: str,
    target: Target | None = None,
) -> int:
    """POST a signed payload; returns the HTTP status once the client answered code 0.
    `timeout_s` bounds the whole delivery, however slowly the client answers; `target` is the
    address `resolve_target` pinned for `url`, where the caller resolved it already."""
    deadline = time.monotonic() + timeout_s
    target = target or resolve_target(url, allowlist, min(timeout_s, RESOLVE_TIMEOUT_S))
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "resourced-callbacks/1",
        "Host": host_header(target.host, target.port),
        "Connection": "close",
        **signed_headers(secret, body, message_id),
    }
    status, raw = _exchange(target, body.encode(), headers, deadline)
    if not 200 <= status < 300:
        raise DeliveryFailed(f"the callback answered HTTP {status}")
    try:
        answer = json.loads(raw or b"null")
    except (ValueError, RecursionError) as exc:  # a client's deeply nested answer is not JSON to us
        raise DeliveryFailed("the callback's answer is not JSON") from exc
    if not isinstance(answer, dict) or "code" not in answer:
        raise DeliveryFailed("the callback's answer is not a JSON object with a code (or was cut short)")
    if answer.get("code") != 0:
        raise DeliveryFailed(f"the callback answered code {answer.get('code')}")
    return int(status)
