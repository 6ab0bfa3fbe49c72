"""The arguments the client commands share (which recording, where the output goes, an export's
own arguments) and what they become in a request, so that `export`, `cancel`, `snapshot` and
`spans` spell and read them one way."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TypeAlias

from app.client import Client, ExportFields, storage_info_b64
from tasks.platform.settings import ClientSettings

Run = Callable[[Client, argparse.Namespace], tuple[dict[str, Any], str]]
Subcommands: TypeAlias = (
    "argparse._SubParsersAction[argparse.ArgumentParser]"  # not subscriptable at run time
)


def add_recording_arguments(
    parser: argparse.ArgumentParser, defaults: ClientSettings, *, required: bool = True
) -> None:
    """Which recording: its folder and the ts storage entry (bucket, region, root folder)."""
    parser.add_argument("--live-path", required=required, default="")
    parser.add_argument("--bucket", required=required, default="", help="the recording's bucket")
    parser.add_argument("--region", default=defaults.region)
    parser.add_argument("--root", default="", help="storage_root_folder")


def add_destination_arguments(parser: argparse.ArgumentParser, key_help: str) -> None:
    """Where the output goes: the mp4 entry's bucket and ExportS3Key."""
    parser.add_argument("--dest-bucket", default="", help="default: --bucket")
    parser.add_argument("--dest-key", default="", help=key_help)


def add_export_arguments(
    parser: argparse.ArgumentParser, defaults: ClientSettings, *, required: bool = True
) -> None:
    """An export's own arguments: `export` requires them, `cancel` takes them to name an export."""
    add_recording_arguments(parser, defaults, required=required)
    parser.add_argument(
        "--start", type=int, required=required, default=None, help="StartPos, ms on the recording's timeline"
    )
    parser.add_argument("--start-time", type=int, default=0, help="StartTime, ms after --start")
    parser.add_argument("--duration", type=int, required=required, default=0, help="ms")
    parser.add_argument(
        "--type", type=int, default=0, choices=[0, 1, 2], help="0 keep codec, 1 H.264, 2 H.265"
    )
    add_destination_arguments(parser, "ExportS3Key: a folder, or a key ending in .mp4")
    parser.add_argument("--file-name", default="")


def storage_info(args: argparse.Namespace) -> str:
    """The request's storage_info: the recording's entry and, beside it, the destination's."""
    return storage_info_b64(args.bucket, args.dest_bucket or args.bucket, args.region, args.root)


def export_fields(args: argparse.Namespace) -> ExportFields:
    """The export that add_export_arguments' arguments name, in the client's words."""
    return ExportFields(
        live_path=args.live_path,
        start_pos=args.start,
        start_time=args.start_time,
        duration=args.duration,
        storage_info=storage_info(args),
        export_type=args.type,
        file_name=args.file_name,
        export_key=args.dest_key,
    )
