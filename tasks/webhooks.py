"""Calling clients back: PutRestoreResult deliveries, signed and SSRF-safe.

A callback URL comes from a client, so it must not make the service reach its own network:
only http(s), no credentials in the URL, and every address the host resolves to must be a
public one unless RESOURCED_CALLBACK_ALLOWLIST names it (host or CIDR). The name is resolved
once and the connection pinned to that address (TLS still checks the name), so a second DNS
answer cannot redirect it; redirects are not followed. Deliveries are signed as Standard
Webhooks do it, so a client can verify them with any Standard Webhooks library.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import certifi
import urllib3
from standardwebhooks.webhooks import Webhook

MAX_RESPONSE_BYTES = 64 * 1024
MAX_URL_LENGTH = 2048

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


def _public(ip: IpAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def _allowlisted(host: str, ip: IpAddress, allowlist: tuple[str, ...]) -> bool:
    for entry in allowlist:
        if entry.lower() == host.lower():
            return True
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def resolve_target(url: str, allowlist: tuple[str, ...]) -> Target:
    """Check a callback URL and pin the address it will be delivered to."""
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
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UrlRefused("callback_url has an invalid port") from exc
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlRefused(f"callback host {host!r} does not resolve") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for ip in addresses:
        if not _public(ip) and not _allowlisted(host, ip, allowlist):
            raise UrlRefused(f"callback host {host!r} resolves to an internal address ({ip})")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, host, port, path, str(addresses[0]))


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


def deliver(
    url: str,
    payload: dict[str, Any],
    secret: str,
    allowlist: tuple[str, ...],
    timeout_s: float,
    message_id: str,
) -> int:
    """POST a signed payload; returns the HTTP status once the client answered code 0."""
    target = resolve_target(url, allowlist)
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "resourced-callbacks/1",
        "Host": target.host if target.port in (80, 443) else f"{target.host}:{target.port}",
        **signed_headers(secret, body, message_id),
    }
    timeout = urllib3.Timeout(connect=min(timeout_s, 5.0), read=timeout_s)
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            timeout=timeout,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(target.address, target.port, timeout=timeout, retries=False)
    try:
        response = pool.urlopen(
            "POST", target.path, body=body.encode(), headers=headers, redirect=False, preload_content=False
        )
        raw = response.read(MAX_RESPONSE_BYTES, decode_content=True)
        response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        raise DeliveryFailed(f"no answer from the callback: {type(exc).__name__}") from exc
    finally:
        pool.close()
    if not 200 <= response.status < 300:
        raise DeliveryFailed(f"the callback answered HTTP {response.status}")
    try:
        answer = json.loads(raw or b"null")
    except ValueError as exc:
        raise DeliveryFailed("the callback's answer is not JSON") from exc
    if not isinstance(answer, dict) or answer.get("code") != 0:
        raise DeliveryFailed(
            f"the callback answered code {answer.get('code') if isinstance(answer, dict) else '?'}"
        )
    return int(response.status)
