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
    1: (
        200,
        {
            "ErrorCode": 1,
            "ErrorMessage": "running: remuxing 40%",
            "TimeWait": 2,
            "JobId": "5b1f0c9e2d7a4e8f9a6b3c2d1e0f4a5b",
            "Progress": 40,
        },
    ),
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
        {
            "ErrorCode": 4,
            "ErrorMessage": "no recording under 'live/cam1' covers the requested range; the recording"
            " covers 2023-11-14T22:13:20Z-2023-11-15T22:13:20Z; nearest media after starts at"
            " 2023-11-14T22:13:20Z; the request asked for 1970-01-20T16:13:32Z-1970-01-20T16:13:52Z;"
            " StartPos looks like seconds: it is in milliseconds",
            "JobId": "0c4e1a7b9d2f4c6e8a0b1c3d5e7f9a2b",
        },
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
            "JobId": "5b1f0c9e2d7a4e8f9a6b3c2d1e0f4a5b",
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

SPANS_REQUEST: dict[str, Any] = {
    "storage_info": storage_info_b64(),
    "LivePath": "live/cam1",
    "StartPos": 1700000000000,
    "Duration": 3600000,
    "Cursor": "",
    "SessionId": "<session>",
    "userid": "alice",
}

SPANS_ANSWER: dict[str, Any] = {
    "ErrorCode": 0,
    "ErrorMessage": "ok",
    "Spans": [{"Start": 1700000000000, "End": 1700000004000}, {"Start": 1700000006000, "End": 1700000020000}],
    "Gaps": [{"Start": 1700000004000, "End": 1700000006000}],
    "Renditions": [{"Name": "", "Width": 0, "Height": 0, "Bandwidth": 0, "Codec": ""}],
    "Cursor": "djE6MTcwMDAwMDAyMDAwMDoxNzAwMDAwMDIwMDAw.Qm9zq3Jz_Vb0xK2mN8pLw4Rt",
}

SNAPSHOT_REQUEST: dict[str, Any] = {
    "storage_info": storage_info_b64(),
    "LivePath": "live/cam1",
    "StartPos": 1700000000000,
    "StartTime": "1540",
    "Width": 640,
    "SessionId": "<session>",
    "userid": "alice",
}

SNAPSHOT_ANSWER: dict[str, Any] = {
    "ErrorCode": 5,
    "ErrorMessage": "ready",
    "TimeWait": 0,
    "JobId": "9d3a5c7e1f2b4d6f8a0c2e4a6b8d0f1c",
    "VideoPath": "",
    "ImagePath": VIDEO_URL.replace("exports/alice/9f2c/clip.mp4", "snapshots/alice/7c1d/snapshot.jpg"),
    "S3Dir": "clips/snapshots/alice/7c1d",
    "Version": "Xk2v9qLrT0aP1mZb8cWd3eYf6gHj4iNo",
    "LackLength": 0,
}


def export_refusals(max_body_bytes: int) -> dict[int, dict[str, dict[str, Any]]]:
    """The export's 403, 413 and 503 answers as the service words them, by HTTP status and case."""
    return {
        403: {
            "userid not the session's": {
                "ErrorCode": 3,
                "ErrorMessage": "forbidden: userid is not the session's user",
            },
            "bucket not allowed": {
                "ErrorCode": 3,
                "ErrorMessage": "forbidden: the destination names bucket 'someone-elses-bucket',"
                " which is not allowed",
            },
        },
        503: {
            "queue unreachable": {
                "ErrorCode": 6,
                "ErrorMessage": "service temporarily unavailable: queue unreachable",
                "TimeWait": 5,
            }
        },
        413: {
            "body too large": {
                "ErrorCode": 2,
                "ErrorMessage": f"bad request: the body is larger than {max_body_bytes} bytes",
            }
        },
    }


def imgbed_answers(max_upload_bytes: int) -> dict[int, dict[str, dict[str, Any]]]:
    """The image bed's error answers by HTTP status, the limits as this deployment sets them."""
    return {
        400: {
            "unsafe path": {
                "errCode": 2,
                "message": "bad request: path or filename must not contain empty, . or .. segments",
            }
        },
        401: {"no session": {"errCode": 3, "message": "not authenticated: SessionId is missing"}},
        403: {
            "not the owner": {
                "errCode": 3,
                "message": "forbidden: only the uploader may delete this image"
                " (and nobody a file it did not write)",
            }
        },
        404: {"no such image": {"errCode": 1, "message": "no such image"}},
        413: {
            "upload too large": {
                "errCode": 2,
                "message": f"bad request: the upload is larger than {max_upload_bytes} bytes",
            }
        },
        501: {
            "not configured": {
                "errCode": 5,
                "message": "the image bed is not configured on this server (RESOURCED_IMGBED_BUCKET)",
            }
        },
        503: {"busy": {"errCode": 4, "message": "busy: the image is being written, try again"}},
    }


def restore_answers(max_body_bytes: int) -> dict[int, dict[str, dict[str, Any]]]:
    """The restore API's error answers by HTTP status ({code, message}), as the service words them."""
    return {
        400: {"bad request": {"code": 2, "message": "bad request: the body must be a JSON object"}},
        401: {"no session": {"code": 3, "message": "not authenticated: SessionId is missing"}},
        403: {
            "bucket not allowed": {
                "code": 3,
                "message": "forbidden: storage_info names bucket 'someone-elses-bucket',"
                " which is not allowed",
            }
        },
        404: {"no such job": {"code": 4, "message": "no such restore job"}},
        413: {
            "body too large": {
                "code": 2,
                "message": f"bad request: the body is larger than {max_body_bytes} bytes",
            }
        },
        429: {"too busy": {"code": 7, "message": "too busy: this user has 10 restore jobs running"}},
        503: {
            "queue unreachable": {"code": 6, "message": "service temporarily unavailable: queue unreachable"}
        },
    }


CANCEL_REQUEST: dict[str, Any] = {
    "JobId": "3f2a9c1e0b7d4a65a1c2e3f405162738",
    "SessionId": "v1.alice.1767225600.Zm9vYmFy",
    "userid": "alice",
}
CANCEL_ANSWER: dict[str, Any] = {
    "ErrorCode": 9,
    "ErrorMessage": "cancelled: the export was cancelled by its owner",
    "JobId": "3f2a9c1e0b7d4a65a1c2e3f405162738",
}
EXPORTS_ANSWER: dict[str, Any] = {
    "ErrorCode": 0,
    "Exports": [
        {
            "JobId": "3f2a9c1e0b7d4a65a1c2e3f405162738",
            "Kind": "export",
            "State": "running",
            "Progress": 42,
            "Source": {"Bucket": "mma-video-archive", "Region": "us-west-1", "Root": ""},
            "LivePath": "live/cam1",
            "StartPos": 1767225600000,
            "Duration": 20000,
            "ExportType": 1,
            "Rendition": "",
            "Destination": {
                "Bucket": "mma-video-exports",
                "Region": "us-west-1",
                "S3Dir": "clips/alice",
                "Keys": ["clips/alice/clip.mp4", "clips/alice/clip.jpg"],
            },
            "CreatedAt": 1767225700123,
            "EndedAt": None,
            "Answer": None,
        }
    ],
    "Cursor": "1767225700.123000:3f2a9c1e0b7d4a65a1c2e3f405162738",
}
