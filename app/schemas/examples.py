"""Examples for the API reference (OpenAPI and docs/api.md), built from real values so that
each one decodes and validates; tests/unit/app/test_api_reference.py checks both."""

from __future__ import annotations

import base64
import json
from typing import Any

STORAGE_ENTRIES: list[dict[str, Any]] = [
    {
        "storage_purpose": "ts",
        "storage_type": "S3",
        "storage_enable": True,
        "storage_name": "mma-video-archive",
        "storage_location": "us-west-1",
        "storage_description": "",
        "storage_root_folder": "",
    },
    {
        "storage_purpose": "mp4",
        "storage_type": "S3",
        "storage_enable": True,
        "storage_name": "mma-video-exports",
        "storage_location": "us-west-1",
        "storage_description": "",
        "storage_root_folder": "clips",
    },
]


def storage_info_b64(entries: list[dict[str, Any]] = STORAGE_ENTRIES) -> str:
    return base64.b64encode(json.dumps(entries, separators=(",", ":")).encode()).decode()


EXPORT_REQUEST: dict[str, Any] = {
    "ServiceCaller": "mma",
    "StartPos": 1700000000000,
    "StartTime": "12500",
    "Duration": 20000,
    "PeerId": "peer-1",
    "LivePath": "live/cam1",
    "FileName": "clip",
    "SessionId": "<session>",
    "export_type": 0,
    "storage_info": storage_info_b64(),
    "userid": "alice",
}

VIDEO_URL = "https://mma-video-exports.s3.us-west-1.amazonaws.com/clips/exports/alice/9f2c/clip.mp4?X-Amz-..."

# One answer per ErrorCode: (HTTP status, body).
EXPORT_ANSWERS: dict[int, tuple[int, dict[str, Any]]] = {
    1: (200, {"ErrorCode": 1, "ErrorMessage": "running: remuxing 40%", "TimeWait": 2}),
    2: (
        400,
        {
            "ErrorCode": 2,
            "ErrorMessage": "bad request: Duration: must be greater than 0; LivePath: Missing data for"
            " required field.",
        },
    ),
    3: (401, {"ErrorCode": 3, "ErrorMessage": "not authenticated: the session is invalid or expired"}),
    4: (
        404,
        {"ErrorCode": 4, "ErrorMessage": "no recording under 'live/cam1' covers the requested range"},
    ),
    5: (
        200,
        {
            "ErrorCode": 5,
            "ErrorMessage": "ready",
            "TimeWait": 0,
            "VideoPath": VIDEO_URL,
            "ImagePath": VIDEO_URL.replace("clip.mp4", "clip.jpg"),
            "S3Dir": "clips/exports/alice/9f2c",
            "Version": "3HL4kqtJlcpXroDTDmJ.7w3ZP4Cq1Zb9",
            "LackLength": 1500,
        },
    ),
    6: (500, {"ErrorCode": 6, "ErrorMessage": "the export failed: S3 refused the upload (SlowDown)"}),
    7: (
        429,
        {"ErrorCode": 7, "ErrorMessage": "too busy: too many exports queued for this user", "TimeWait": 12},
    ),
    8: (
        200,
        {
            "ErrorCode": 8,
            "ErrorMessage": "restoring: the range's segments are in archival storage; a restore was started",
            "TimeWait": 300,
        },
    ),
}
