"""A minimal PutRestoreResult receiver for client implementers (Flask), verifying signatures.

RESOURCED_CALLBACK_SECRET=whsec_... flask --app docs/receiver_example.py run --port 9000
"""

from __future__ import annotations

import os

from flask import Flask, request

from app.client import verify_restore_callback

app = Flask(__name__)
SECRET = os.environ.get("RESOURCED_CALLBACK_SECRET", "")
seen: set[str] = set()


@app.post("/resource/v1/i/PutRestoreResult")
def put_restore_result() -> tuple[dict[str, object], int]:
    try:
        payload = verify_restore_callback(SECRET, request.get_data(), dict(request.headers))
    except Exception:
        return {"code": 401, "message": "bad signature"}, 401
    message_id = request.headers.get("webhook-id", "")
    if message_id not in seen:  # retries of one result carry the same id
        seen.add(message_id)
        if payload["type"] == 1:
            print("restore", payload["task_id"], payload["code"], payload["file_list_status"])
    return {"code": 0, "message": "received"}, 200
