"""The OpenAPI document and an interactive docs page (Swagger UI, served from local files)."""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, Response, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from app.openapi import build_spec
from app.services import services

bp = Blueprint("docs", __name__)

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>resourced API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="ui"></div><script src="/docs/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script></body></html>"""


@cache
def _document(max_duration_ms: int) -> dict[str, Any]:
    return build_spec(services().settings)


@bp.get("/openapi.json")
def openapi() -> dict[str, Any]:
    return _document(services().settings.max_duration_ms)


@bp.get("/docs")
@bp.get("/docs/")
def docs_page() -> Response:
    return Response(PAGE, mimetype="text/html")


@bp.get("/docs/<path:name>")
def docs_assets(name: str) -> Response:
    return send_from_directory(swagger_ui_path, name)
