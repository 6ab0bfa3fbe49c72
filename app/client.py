"""A Python client for resourced: submit and poll exports and snapshots (honouring
TimeWait/Retry-After), a recording's spans, the image bed, restores, and verifying signed
deliveries (PutRestoreResult, an export's CallbackUrl) on the client's side.

    client = Client("https://resourced.example", session_id, "alice")
    info = storage_info_b64("archive", "exports")
    held = client.all_spans(live_path="live/cam1", storage_info=info)
    result = client.export(live_path="live/cam1", start_pos=held.spans[0][0], duration=20_000,
                           storage_info=info, callback_url="https://me.example/hook")
    client.download(result.video_url, "clip.mp4")
    still = client.snapshot(live_path="live/cam1", start_pos=held.spans[0][0] + 1540, storage_info=info)
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict, Unpack

import requests
from standardwebhooks.webhooks import Webhook

EXPORT_PATH = "/resource/v1/i/export-to-s3dir"
SNAPSHOT_PATH = "/resource/v1/i/snapshot"
SPANS_PATH = "/resource/v1/i/recording-spans"
CANCEL_PATH = "/resource/v1/i/export-cancel"
EXPORTS_PATH = "/resource/v1/i/exports"
RECONNECT_WAIT_S = 1.0  # between polls while the service cannot be reached at all


class ExportFields(TypedDict):
    """What an export asks for, in the client's words: `export_body` builds the request from it
    and `export` takes the same keywords, so the two cannot drift apart."""

    live_path: str
    start_pos: int
    duration: int
    storage_info: str
    start_time: NotRequired[int]
    export_type: NotRequired[int]
    file_name: NotRequired[str]
    peer_id: NotRequired[str]
    service_caller: NotRequired[str]  # "mma" when absent
    export_bucket: NotRequired[str]
    export_region: NotRequired[str]
    export_key: NotRequired[str]
    callback_url: NotRequired[str]


class ResourcedError(Exception):
    """An answer other than success, with the API's own code."""

    def __init__(self, code: int, message: str, status: int = 0) -> None:
        super().__init__(f"error {code}: {message}")
        self.code, self.message, self.status = code, message, status


class BadRequest(ResourcedError):
    pass


class NotAuthenticated(ResourcedError):
    pass


class NoMedia(ResourcedError):
    pass


class ExportFailed(ResourcedError):
    pass


class Busy(ResourcedError):
    def __init__(self, code: int, message: str, status: int, retry_after: float) -> None:
        super().__init__(code, message, status)
        self.retry_after = retry_after


class NotFound(ResourcedError):
    pass


class Cancelled(ResourcedError):
    """ErrorCode 9: the export was cancelled by its owner."""


EXPORT_ERRORS: dict[int, type[ResourcedError]] = {
    2: BadRequest,
    3: NotAuthenticated,
    4: NoMedia,
    6: ExportFailed,
    9: Cancelled,
}


@dataclass(frozen=True)
class ExportResult:
    video_url: str
    image_url: str
    s3_dir: str
    version: str
    lack_ms: int
    answer: dict[str, Any]

    @property
    def job_id(self) -> str:
        return str(self.answer.get("JobId", ""))


@dataclass(frozen=True)
class SpansPage:
    """One page of recording-spans: (start, end) ms pairs, the renditions, the next Cursor."""

    spans: list[tuple[int, int]]
    gaps: list[tuple[int, int]]
    renditions: list[dict[str, Any]]
    cursor: str


def join_pages(pages: list[SpansPage]) -> SpansPage:
    """The pages of one request as one: a span cut at a page boundary is whole again."""
    spans: list[tuple[int, int]] = []
    for page in pages:
        for start, end in page.spans:
            if spans and spans[-1][1] == start:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
    gaps = [gap for page in pages for gap in page.gaps]
    return SpansPage(spans, gaps, pages[0].renditions if pages else [], "")


def storage_info_b64(
    ts_bucket: str, mp4_bucket: str | None = None, region: str = "us-east-1", root: str = ""
) -> str:
    """The `storage_info` field: base64 of the storage entries JSON."""
    entry = {
        "storage_type": "S3",
        "storage_enable": True,
        "storage_location": region,
        "storage_description": "",
        "storage_root_folder": root,
    }
    entries = [{**entry, "storage_purpose": "ts", "storage_name": ts_bucket}]
    if mp4_bucket:
        entries.append(
            {**entry, "storage_purpose": "mp4", "storage_name": mp4_bucket, "storage_root_folder": ""}
        )
    return base64.b64encode(json.dumps(entries).encode()).decode()


def verify_restore_callback(secret: str, body: bytes | str, headers: Mapping[str, str]) -> dict[str, Any]:
    """For client implementers: the payload of a signed delivery (PutRestoreResult, or an
    export's CallbackUrl) if its signature is valid; raises if not."""
    lowered = {k.lower(): v for k, v in headers.items()}
    payload: dict[str, Any] = Webhook(secret).verify(body, lowered)
    return payload


class Client:
    def __init__(
        self,
        base_url: str,
        session_id: str,
        userid: str,
        timeout_s: float = 30,
        http: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session_id, self.userid, self.timeout_s = session_id, userid, timeout_s
        self.http = http or requests.Session()

    def _headers(self) -> dict[str, str]:
        return {"X-Session-Id": self.session_id}

    def export_request(
        self, body: dict[str, Any], hold_s: float = 0, path: str = EXPORT_PATH
    ) -> tuple[int, dict[str, Any], float]:
        """One submit-or-poll (of an export, or of a snapshot with `path`); `hold_s` > 0 asks the
        service to hold it until the job ends (long polling, `Prefer: wait=N`), and the read
        timeout grows to outlast the hold."""
        headers = {"Prefer": f"wait={round(hold_s)}"} if hold_s > 0 else {}
        timeout = max(self.timeout_s, hold_s + 10)
        response = self.http.post(self.base_url + path, json=body, headers=headers, timeout=timeout)
        try:
            answer = response.json()
        except ValueError as exc:
            raise ResourcedError(
                6, f"not a JSON answer (HTTP {response.status_code})", response.status_code
            ) from exc
        retry_after = float(response.headers.get("Retry-After") or answer.get("TimeWait") or 1)
        return response.status_code, answer, retry_after

    def export_body(self, **fields: Unpack[ExportFields]) -> dict[str, Any]:
        """The export's request body: what `export` submits and polls, and what `cancel` names."""
        body: dict[str, Any] = {
            "ServiceCaller": fields.get("service_caller", "mma"),
            "StartPos": fields["start_pos"],
            "StartTime": str(fields.get("start_time", 0)),
            "Duration": fields["duration"],
            "PeerId": fields.get("peer_id", ""),
            "LivePath": fields["live_path"],
            "FileName": fields.get("file_name", ""),
            "SessionId": self.session_id,
            "export_type": fields.get("export_type", 0),
            "storage_info": fields["storage_info"],
            "userid": self.userid,
        }
        for field, value in (
            ("ExportS3Bucket", fields.get("export_bucket", "")),
            ("ExportS3Region", fields.get("export_region", "")),
            ("ExportS3Key", fields.get("export_key", "")),
            ("CallbackUrl", fields.get("callback_url", "")),
        ):
            if value:
                body[field] = value
        return body

    def export(
        self,
        *,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        timeout_s: float = 3600,
        max_poll_s: float = 30,
        hold_s: float = 25,
        **fields: Unpack[ExportFields],
    ) -> ExportResult:
        """Submit and poll until ready; raises the ResourcedError subclass of the ErrorCode.

        Each poll is held by the service until the job ends (up to its configured hold, at most
        `hold_s`), and between polls the client sleeps TimeWait: the answer arrives when the clip
        is ready, not at the next poll. `on_progress` gets every processing (1/8) answer, with
        `JobId` and `Progress`. `callback_url`: where the service POSTs the job's end as well."""
        body = self.export_body(**fields)
        answer = self.until_ended(body, EXPORT_PATH, on_progress, timeout_s, max_poll_s, hold_s)
        return ExportResult(
            answer["VideoPath"],
            answer["ImagePath"],
            answer["S3Dir"],
            answer["Version"],
            int(answer.get("LackLength", 0)),
            answer,
        )

    def snapshot(
        self,
        *,
        live_path: str,
        start_pos: int,
        storage_info: str,
        start_time: int = 0,
        width: int = 0,
        export_bucket: str = "",
        export_region: str = "",
        export_key: str = "",
        timeout_s: float = 600,
        hold_s: float = 25,
    ) -> ExportResult:
        """The JPEG of the picture on screen at start_pos + start_time (`image_url`); raises
        NoMedia when no picture is there. Polled like an export."""
        body: dict[str, Any] = {
            "storage_info": storage_info,
            "LivePath": live_path,
            "StartPos": start_pos,
            "StartTime": str(start_time),
            "SessionId": self.session_id,
            "userid": self.userid,
        }
        for field, value in (
            ("Width", width),
            ("ExportS3Bucket", export_bucket),
            ("ExportS3Region", export_region),
            ("ExportS3Key", export_key),
        ):
            if value:
                body[field] = value
        answer = self.until_ended(body, SNAPSHOT_PATH, None, timeout_s, 30, hold_s)
        return ExportResult("", answer["ImagePath"], answer["S3Dir"], answer["Version"], 0, answer)

    def spans(
        self,
        *,
        live_path: str,
        storage_info: str,
        start_pos: int | None = None,
        duration: int | None = None,
        rendition: str = "",
        cursor: str = "",
    ) -> SpansPage:
        """One page of the recording's spans and gaps; pass `cursor` on for the next page."""
        body: dict[str, Any] = {
            "storage_info": storage_info,
            "LivePath": live_path,
            "SessionId": self.session_id,
            "userid": self.userid,
        }
        for field, value in (("StartPos", start_pos), ("Duration", duration)):
            if value is not None:
                body[field] = value
        for field, text in (("Rendition", rendition), ("Cursor", cursor)):
            if text:
                body[field] = text
        response = self.http.post(self.base_url + SPANS_PATH, json=body, timeout=self.timeout_s)
        answer: dict[str, Any] = response.json()
        code = int(answer.get("ErrorCode", 6))
        if code != 0:
            raise EXPORT_ERRORS.get(code, ResourcedError)(
                code, answer.get("ErrorMessage", ""), response.status_code
            )
        return SpansPage(
            [(s["Start"], s["End"]) for s in answer["Spans"]],
            [(g["Start"], g["End"]) for g in answer["Gaps"]],
            answer["Renditions"],
            answer["Cursor"],
        )

    def cancel(self, job_id: str = "", request: dict[str, Any] | None = None) -> dict[str, Any]:
        """Cancel an export by its JobId, or by its own request body (`export_request`'s): the
        answer is ErrorCode 9, or the final answer of an export that had already ended."""
        body = dict(request) if request is not None else {"JobId": job_id}
        body.update(SessionId=self.session_id, userid=self.userid)
        response = self.http.post(self.base_url + CANCEL_PATH, json=body, timeout=self.timeout_s)
        answer: dict[str, Any] = response.json()
        code = int(answer.get("ErrorCode", 6))
        if code not in (1, 5, 8, 9):  # 1/8: raced its own end; 5: ended before the cancel
            raise EXPORT_ERRORS.get(code, ResourcedError)(
                code, answer.get("ErrorMessage", ""), response.status_code
            )
        return answer

    def exports(self, state: str = "", limit: int = 50, cursor: str = "") -> tuple[list[dict[str, Any]], str]:
        """One page of the caller's exports, newest first (a service session: everyone's), and
        the cursor of the next page ("" on the last)."""
        params = {k: v for k, v in (("state", state), ("limit", str(limit)), ("cursor", cursor)) if v}
        response = self.http.get(
            self.base_url + EXPORTS_PATH, params=params, headers=self._headers(), timeout=self.timeout_s
        )
        answer: dict[str, Any] = response.json()
        code = int(answer.get("ErrorCode", 6))
        if code != 0:
            raise EXPORT_ERRORS.get(code, ResourcedError)(
                code, answer.get("ErrorMessage", ""), response.status_code
            )
        return list(answer["Exports"]), str(answer["Cursor"])

    def all_spans(self, **kwargs: Any) -> SpansPage:
        """Every page of one spans request, joined (see join_pages)."""
        pages = [self.spans(**kwargs)]
        while pages[-1].cursor:
            pages.append(self.spans(**kwargs, cursor=pages[-1].cursor))
        return join_pages(pages)

    def until_ended(
        self,
        body: dict[str, Any],
        path: str,
        on_progress: Callable[[dict[str, Any]], None] | None,
        timeout_s: float,
        max_poll_s: float,
        hold_s: float,
    ) -> dict[str, Any]:
        """Send the request until it is answered 5 (returned) or an error (raised)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                status, answer, wait = self.export_request(body, hold_s, path)
            except requests.ConnectionError as exc:  # the web tier restarting: the job goes on
                if time.monotonic() + RECONNECT_WAIT_S > deadline:
                    raise ResourcedError(6, f"the service is unreachable: {exc}", 0) from exc
                time.sleep(RECONNECT_WAIT_S)
                continue
            code = int(answer.get("ErrorCode", 6))
            if code == 5:
                return answer
            if code == 7 or status == 503:  # busy, or Redis/S3 briefly away: both say when to retry
                if time.monotonic() + wait > deadline:
                    message = answer.get("ErrorMessage", "busy")
                    if code == 7:
                        raise Busy(code, message, status, wait)
                    raise EXPORT_ERRORS.get(code, ResourcedError)(code, message, status)
            elif code in (1, 8):
                if on_progress is not None:
                    on_progress(answer)
            else:
                raise EXPORT_ERRORS.get(code, ResourcedError)(code, answer.get("ErrorMessage", ""), status)
            if time.monotonic() > deadline:
                raise ResourcedError(1, "gave up waiting for the export", status)
            time.sleep(min(max(wait, 0.2), max_poll_s))

    def download(
        self, url: str, target: str | Path, on_bytes: Callable[[int, int], None] | None = None
    ) -> Path:
        """Stream a result to a file; on_bytes(done, total) as it goes."""
        path = Path(target)
        with self.http.get(url, stream=True, timeout=self.timeout_s) as response:
            response.raise_for_status()
            total, done = int(response.headers.get("Content-Length", 0)), 0
            partial = path.with_name(path.name + ".part")
            with partial.open("wb") as handle:
                for chunk in response.iter_content(1 << 20):
                    handle.write(chunk)
                    done += len(chunk)
                    if on_bytes is not None:
                        on_bytes(done, total)
            partial.replace(path)
        return path

    def _call(self, method: str, path: str, ok_field: str, **kwargs: Any) -> dict[str, Any]:
        response = self.http.request(method, self.base_url + path, timeout=self.timeout_s, **kwargs)
        answer: dict[str, Any] = response.json()
        code = int(answer.get(ok_field, -1))
        if code != 0:
            kind = {1: NotFound, 2: BadRequest, 3: NotAuthenticated}.get(code, ResourcedError)
            if ok_field == "code" and response.status_code == 404:
                kind = NotFound
            raise kind(code, str(answer.get("message", "")), response.status_code)
        return answer

    def upload_image(self, data: bytes, path: str, filename: str | None = None) -> dict[str, Any]:
        form = {"path": path, **({"filename": filename} if filename else {})}
        files = {"file": (filename or "upload", data)}
        return self._call(
            "POST", "/api/imgbed/v1/upload", "errCode", headers=self._headers(), data=form, files=files
        )

    def delete_image(self, path: str, filename: str) -> dict[str, Any]:
        body = {"path": path, "filename": filename}
        return self._call("POST", "/api/imgbed/v1/delete", "errCode", headers=self._headers(), json=body)

    def restore(
        self, storage_info: str, file_dir: str, files: list[str], callback_url: str, **extra: Any
    ) -> str:
        body = {
            "storage_info": storage_info,
            "file_dir": file_dir,
            "file_list": files,
            "callback_url": callback_url,
            "SessionId": self.session_id,
            "userid": self.userid,
            **extra,
        }
        return str(self._call("POST", "/resource/v1/i/restore", "code", json=body)["task_id"])

    def restore_status(self, task_id: str) -> dict[str, Any]:
        return self._call("GET", f"/resource/v1/i/restore/{task_id}", "code", headers=self._headers())

    def test_callback(self, callback_url: str) -> dict[str, Any]:
        body = {"callback_url": callback_url, "SessionId": self.session_id, "userid": self.userid}
        return self._call("POST", "/resource/v1/i/restore/test-callback", "code", json=body)
