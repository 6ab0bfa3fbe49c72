"""Callback URL policy (SSRF) and Standard Webhooks signatures; nothing here opens a connection."""

from __future__ import annotations

import json

import pytest
from standardwebhooks.webhooks import Webhook

from tasks.platform.webhooks import UrlRefused, check_url, resolve_target, restore_result, signed_headers

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "http://user:pw@93.184.216.34/",
        "http://127.0.0.1/cb",
        "http://localhost:8080/cb",
        "http://10.1.2.3/cb",
        "http://172.16.0.5/cb",
        "http://192.168.1.1/cb",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/cb",
        "http://0.0.0.0/cb",
        "http://224.0.0.1/cb",
        "http://[::1]/cb",
        "http://[::ffff:127.0.0.1]/cb",
        "http://[fd00::1]/cb",
        "http://[fe80::1]/cb",
        "http:///nohost",
        "http://93.184.216.34:99999/",
        "http://93.184.216.34/a b",
        "",
    ],
)
def test_refused_urls(url: str) -> None:
    with pytest.raises(UrlRefused):
        resolve_target(url, ())


def test_public_address_is_pinned() -> None:
    target = resolve_target("https://93.184.216.34:8443/cb?x=1", ())
    assert (target.scheme, target.address, target.port, target.path) == (
        "https",
        "93.184.216.34",
        8443,
        "/cb?x=1",
    )


@pytest.mark.parametrize(
    ("url", "allowlist"),
    [
        ("http://127.0.0.1:9000/cb", ("127.0.0.1",)),
        ("http://10.1.2.3/cb", ("10.0.0.0/8",)),
        ("http://localhost:9000/cb", ("localhost",)),
    ],
)
def test_allowlist_opens_internal_hosts(url: str, allowlist: tuple[str, ...]) -> None:
    assert resolve_target(url, allowlist).port in {80, 9000}


def test_signature_verifies_with_a_standard_webhooks_library() -> None:
    body = json.dumps(restore_result("t1", "dir", {"a.ts": 0, "b.ts": 1}, 1, "1 of 2 not restored"))
    headers = signed_headers(SECRET, body)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(SECRET).verify(body, headers)["file_list_status"][1] == {
        "file_name": "b.ts",
        "file_code": 1,
    }
    tampered = body.replace('"code":1', '"code":0').replace('"code": 1', '"code": 0')
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook(SECRET).verify(tampered, headers)


def test_payload_has_exactly_the_documented_fields() -> None:
    payload = restore_result("t1", "d", {"x": 0}, 0, "ok")
    assert set(payload) == {"code", "message", "type", "task_id", "file_dir", "file_list_status"}
    assert payload["type"] == 1


@pytest.mark.parametrize(
    ("url", "allowlist"),
    [
        ("http://[::ffff:127.0.0.1]:9000/cb", ("127.0.0.1/32",)),
        ("http://[::ffff:10.1.2.3]/cb", ("10.0.0.0/8",)),
        ("http://[64:ff9b::a01:203]/cb", ("10.1.2.3",)),
    ],
)
def test_an_embedded_ipv4_is_allowlisted_by_that_ipv4(url: str, allowlist: tuple[str, ...]) -> None:
    """README: an address embedding an IPv4 is judged by that IPv4, for the allowlist as well."""
    assert resolve_target(url, allowlist).port in {80, 9000}


@pytest.mark.parametrize(
    ("url", "allowlist"),
    [
        ("http://[::ffff:127.0.0.2]/cb", ("127.0.0.1/32",)),
        ("http://[2002:a01:203::1]/cb", ("10.0.0.0/8",)),
        ("http://[::1]/cb", ("0.0.0.0/8",)),  # IPv6 loopback is not the compatible form of 0.0.0.1
    ],
)
def test_an_embedded_ipv4_outside_the_allowlist_stays_refused(url: str, allowlist: tuple[str, ...]) -> None:
    with pytest.raises(UrlRefused):
        resolve_target(url, allowlist)


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "http://10.0.0.1/", "http://[::ffff:127.0.0.1]/", "http://x:y@host.example/"],
)
def test_check_url_judges_forms_and_literal_addresses_without_dns(url: str) -> None:
    with pytest.raises(UrlRefused):
        check_url(url, ())


def test_check_url_leaves_a_host_name_to_resolution() -> None:
    assert check_url("https://hooks.example:8443/cb?x=1", ()).port == 8443
