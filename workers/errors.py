"""Export failures a client is told about, each with its API ErrorCode."""

from __future__ import annotations

from tasks.exports.spec import ErrorCode


class ExportError(Exception):
    """A failure that retrying will not fix: recorded on the job and answered to the client."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NoMedia(ExportError):
    """ErrorCode 4. `located`: the message already says what the recording covers near the
    request (workers/archive/spans.coverage_note); the job adds that to one that does not."""

    def __init__(self, message: str, located: bool = False) -> None:
        super().__init__(ErrorCode.NO_MEDIA, message)
        self.located = located


class SegmentsArchived(ExportError):
    """Objects the range needs (segments, or a playlist that lists them) are in archival storage;
    a restore must run first. Playlists and segments are restored alike."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(
            ErrorCode.RESTORING, f"{len(keys)} object(s) of the recording are in archival storage"
        )
        self.keys = keys
