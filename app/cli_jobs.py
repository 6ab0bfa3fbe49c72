"""`resourced cancel` and `resourced exports`: control over the exports a caller started."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from app.cli_args import Subcommands, add_export_arguments, export_fields
from app.client import Client
from tasks.platform.settings import ClientSettings


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def run_cancel(client: Client, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """By --job-id, or by the export's own arguments (the same ones `resourced export` took)."""
    if args.job_id:
        answer = client.cancel(args.job_id)
    else:
        if not (args.live_path and args.bucket and args.start is not None and args.duration):
            raise ValueError(
                "cancel needs --job-id, or the export's --live-path, --bucket, --start, --duration"
            )
        body = client.export_body(**export_fields(args))
        answer = client.cancel(request=body)
    code = int(answer["ErrorCode"])
    line = (
        f"cancelled: {answer['JobId']}"
        if code == 9
        else f"already ended ({code}): {answer.get('ErrorMessage', '')}"
    )
    return answer, line


def run_exports(client: Client, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    exports, cursor = client.exports(state=args.state, limit=args.limit, cursor=args.cursor)
    lines = [
        f"{e['JobId']}  {e['State']:9} {e['Progress']:3}%  {_when(e['CreatedAt'])}  "
        f"{e['LivePath']} [{e['StartPos']}, +{e['Duration']} ms) type {e['ExportType']}"
        + (f"  ({e['User']})" if "User" in e else "")
        for e in exports
    ] or ["no exports"]
    if cursor:
        lines.append(f"more: --cursor {cursor}")
    return {"ErrorCode": 0, "Exports": exports, "Cursor": cursor}, "\n".join(lines)


def add_commands(
    commands: Subcommands, client: argparse.ArgumentParser, defaults: ClientSettings
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The cancel and exports subcommands; their handlers are set by the caller."""
    cancel = commands.add_parser("cancel", parents=[client], help="cancel a queued or running export")
    cancel.add_argument("--job-id", default="", help="the JobId every export answer carries")
    add_export_arguments(cancel, defaults, required=False)
    listing = commands.add_parser("exports", parents=[client], help="your exports, newest first")
    listing.add_argument("--state", default="", help="queued, running, parked, done, failed or cancelled")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--cursor", default="", help="the next page, as the last one printed")
    return cancel, listing
