"""`resourced spans` and `resourced snapshot`: a recording's timeline and a still of one instant."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from app.cli_args import Subcommands, add_destination_arguments, add_recording_arguments, storage_info
from app.client import Client, storage_info_b64
from tasks.platform.settings import ClientSettings


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def spans_lines(spans: list[tuple[int, int]], gaps: list[tuple[int, int]]) -> list[str]:
    """One line per span and gap, in timeline order, readable and with the exact ms."""
    rows = [(a, b, "media") for a, b in spans] + [(a, b, "gap") for a, b in gaps]
    return [
        f"{kind:5} {_iso(a)} - {_iso(b)}  [{a}, {b})  {(b - a) / 1000:g} s" for a, b, kind in sorted(rows)
    ]


def run_spans(client: Client, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    info = storage_info_b64(args.bucket, None, args.region, args.root)
    query: dict[str, Any] = {
        "live_path": args.live_path,
        "storage_info": info,
        "start_pos": args.start,
        "duration": args.duration,
        "rendition": args.rendition,
    }
    page = (
        client.spans(**query, cursor=args.cursor)
        if args.cursor or args.one_page
        else client.all_spans(**query)
    )
    payload = {
        "ErrorCode": 0,
        "Spans": [{"Start": a, "End": b} for a, b in page.spans],
        "Gaps": [{"Start": a, "End": b} for a, b in page.gaps],
        "Renditions": page.renditions,
        "Cursor": page.cursor,
    }
    lines = spans_lines(page.spans, page.gaps) or ["no media in that window"]
    if page.cursor:
        lines.append(f"more: --cursor {page.cursor}")
    return payload, "\n".join(lines)


def run_snapshot(client: Client, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    result = client.snapshot(
        live_path=args.live_path,
        start_pos=args.start,
        start_time=args.start_time,
        storage_info=storage_info(args),
        width=args.width,
        export_key=args.dest_key,
        hold_s=args.hold,
    )
    if args.download:
        client.download(result.image_url, args.download)
    line = f"ready: {result.image_url}" + (f"\nsaved to {args.download}" if args.download else "")
    return {**result.answer, "Downloaded": args.download or None}, line


def add_commands(
    commands: Subcommands, client: argparse.ArgumentParser, defaults: ClientSettings
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The spans and snapshot subcommands; their handlers are set by the caller."""
    spans = commands.add_parser("spans", parents=[client], help="what a recording holds: spans and gaps")
    add_recording_arguments(spans, defaults)
    spans.add_argument(
        "--start", type=int, default=None, help="StartPos, ms (default: the recording's start)"
    )
    spans.add_argument("--duration", type=int, default=None, help="ms (default: to the recording's end)")
    spans.add_argument("--rendition", default="")
    spans.add_argument("--cursor", default="", help="a page's Cursor: print that page only")
    spans.add_argument("--one-page", action="store_true", help="the first page only (default: every page)")

    snap = commands.add_parser("snapshot", parents=[client], help="a JPEG of the picture at one instant")
    snap.add_argument("--start", type=int, required=True, help="StartPos, ms on the recording's timeline")
    snap.add_argument("--start-time", type=int, default=0, help="StartTime, ms after --start")
    snap.add_argument("--width", type=int, default=0, help="pixels, aspect kept (default: the source's)")
    add_recording_arguments(snap, defaults)
    add_destination_arguments(snap, "ExportS3Key: a key ending in .jpg, or a folder")
    snap.add_argument("--download", default="", help="save the JPEG here")
    snap.add_argument("--hold", type=float, default=25, help="long polling hold, seconds")
    return spans, snap
