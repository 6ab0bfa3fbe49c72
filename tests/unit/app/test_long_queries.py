"""Over-long query values: a JSON ErrorCode 2 naming the parameter, never the HTML of the server in
front of the app (gunicorn's request line is raised to 8190 bytes so such a query reaches it)."""

from __future__ import annotations

import ast
from pathlib import Path

from flask.testing import FlaskClient

from tasks.exports.listing import MAX_CURSOR_CHARS

LIST = "/resource/v1/i/exports"
GUNICORN_CONF = Path(__file__).resolve().parents[3] / "deploy" / "gunicorn.conf.py"


def test_a_cursor_longer_than_any_listing_makes_is_named(client: FlaskClient, session: str) -> None:
    cursor = "1767225700.123:" + "a" * 5000  # well formed but for its length: once a 200 page
    response = client.get(f"{LIST}?cursor={cursor}", headers={"X-Session-Id": session})
    answer = response.get_json()
    assert (response.status_code, answer["ErrorCode"]) == (400, 2)
    assert answer["ErrorMessage"].startswith("bad request: cursor: longer than any cursor")
    assert len(answer["ErrorMessage"]) < 200  # the value is not echoed back


def test_a_cursor_the_listing_makes_fits(client: FlaskClient, session: str) -> None:
    cursor = "1767225700.123000:3f2a9c1e0b7d4a65a1c2e3f405162738"
    assert len(cursor) < MAX_CURSOR_CHARS
    response = client.get(f"{LIST}?cursor={cursor}", headers={"X-Session-Id": session})
    assert (response.status_code, response.get_json()["ErrorCode"]) == (200, 0)


def test_gunicorn_lets_a_long_query_reach_the_app() -> None:
    tree = ast.parse(GUNICORN_CONF.read_text())
    values = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    limit = values["limit_request_line"]
    assert isinstance(limit, ast.Constant) and limit.value == 8190  # gunicorn's maximum; default 4094
