"""The `resourced` command: issue sessions (operators), and export, spans, snapshot, image bed
and restore calls (clients), with progress bars on a terminal and `--json` for scripts."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from tqdm import tqdm

from app import cli_jobs, cli_section6
from app.auth import BadScope, make_backend
from app.cli_args import Run, add_export_arguments, export_fields
from app.client import Client, ResourcedError, storage_info_b64
from tasks.platform.settings import ClientSettings, ConfigError, Settings

PERCENT = re.compile(r"(\d+)%")


def _session_issue(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        backend = make_backend(settings, redis.Redis.from_url(settings.redis_url))
        scopes = tuple(args.scope or ())
        print(
            backend.issue(args.user, args.ttl or settings.session_ttl_s, service=args.service, scopes=scopes)
        )
    except (ConfigError, BadScope) as exc:
        return _fail(str(exc), 2)
    except redis.RedisError as exc:
        return _fail(f"session store unreachable: {exc}")
    return 0


def _fail(message: str, code: int = 1) -> int:
    print(f"resourced: {message}", file=sys.stderr)
    return code


def _client(args: argparse.Namespace) -> Client:
    if not args.session:
        raise ResourcedError(3, "no session: pass --session or set RESOURCED_SESSION")
    return Client(args.url, args.session, args.user)


def _emit(args: argparse.Namespace, payload: dict[str, Any], line: str) -> None:
    print(json.dumps(payload) if args.json else line)


def _export(args: argparse.Namespace) -> int:
    client = _client(args)
    bar = (
        None
        if args.json or not sys.stderr.isatty()
        else tqdm(total=100, unit="%", desc="export", file=sys.stderr)
    )

    said: list[str] = []

    def progress(answer: dict[str, Any]) -> None:
        """The job's state, step and percent: on the bar on a terminal, else one line per change."""
        message = str(answer.get("ErrorMessage", ""))
        found = PERCENT.search(message)
        percent = answer.get("Progress", int(found.group(1)) if found else None)
        if bar is not None:
            bar.set_description(message.split(":", 1)[-1].rsplit(" ", 1)[0].strip() or "export")
            if percent is not None:
                bar.update(max(0, int(percent) - bar.n))
        elif not args.json and message not in said[-1:]:
            said.append(message)
            print(f"export: {message}", file=sys.stderr, flush=True)

    fields = export_fields(args)
    fields["callback_url"] = args.callback_url
    result = client.export(**fields, on_progress=progress, hold_s=args.hold)
    if bar is not None:
        bar.update(100 - bar.n)
        bar.close()
    if args.download:
        down = (
            None if args.json or not sys.stderr.isatty() else tqdm(unit="B", unit_scale=True, file=sys.stderr)
        )

        def on_bytes(done: int, total: int) -> None:
            if down is not None:
                down.total = total or None
                down.update(done - down.n)

        client.download(result.video_url, args.download, on_bytes)
        if down is not None:
            down.close()
    line = f"ready: {result.video_url}" + (f"\nsaved to {args.download}" if args.download else "")
    if result.lack_ms:
        line += f"\n{result.lack_ms} ms of the range had no recording"
    _emit(args, {**result.answer, "Downloaded": args.download or None}, line)
    return 0


def _printed(run: Run) -> Callable[[argparse.Namespace], int]:
    """The handler of a command whose `run` answers (payload, line): printed as --json asks."""

    def handler(args: argparse.Namespace) -> int:
        payload, text = run(_client(args), args)
        _emit(args, payload, text)
        return 0

    return handler


def _imgbed(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.imgbed_command == "upload":
        answer = client.upload_image(Path(args.file).read_bytes(), args.path, args.filename)
        _emit(args, answer, answer["url"])
    else:
        answer = client.delete_image(args.path, args.filename)
        _emit(args, answer, "deleted")
    return 0


def _restore(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.restore_command == "start":
        info = storage_info_b64(args.bucket, None, args.region, args.root)
        task_id = client.restore(
            info, args.dir, args.files, args.callback_url, tier=args.tier, days=args.days
        )
        _emit(args, {"code": 0, "task_id": task_id}, task_id)
    elif args.restore_command == "status":
        answer = client.restore_status(args.task_id)
        _emit(args, answer, f"{answer['state']}: {answer['message']}")
    else:
        answer = client.test_callback(args.callback_url)
        _emit(args, answer, answer["message"])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="resourced", description="resourced media service")
    commands = parser.add_subparsers(dest="command", required=True)

    session = commands.add_parser("session", help="sessions for clients (operators)")
    issue = session.add_subparsers(dest="session_command", required=True).add_parser(
        "issue", help="print a SessionId the running service accepts"
    )
    issue.add_argument("--user", required=True)
    issue.add_argument("--ttl", type=int, default=0, help="seconds (default RESOURCED_SESSION_TTL)")
    issue.add_argument(
        "--service", action="store_true", help="an internal service caller (acts for any user)"
    )
    issue.add_argument(
        "--scope",
        action="append",
        metavar="BUCKET/PREFIX",
        help="limit the session to this bucket and key prefix (repeatable; default: unscoped)",
    )
    issue.set_defaults(handler=_session_issue)

    defaults = ClientSettings.from_env()
    client = argparse.ArgumentParser(add_help=False)
    client.add_argument("--url", default=defaults.url, help="default: RESOURCED_URL")
    client.add_argument("--session", default=defaults.session, help="default: RESOURCED_SESSION")
    client.add_argument("--user", default=defaults.user, help="default: RESOURCED_USER")
    client.add_argument("--json", action="store_true", help="one JSON object on stdout")

    export = commands.add_parser("export", parents=[client], help="export a clip and wait for it")
    add_export_arguments(export, defaults)
    export.add_argument("--download", default="", help="save the MP4 here")
    export.add_argument(
        "--hold",
        type=float,
        default=25,
        help="seconds a poll may be held open until the job ends (long polling; 0: answer at once)",
    )
    export.add_argument(
        "--callback-url", default="", help="CallbackUrl: the job's end is POSTed there, signed"
    )
    export.set_defaults(handler=_export)
    spans, snap = cli_section6.add_commands(commands, client, defaults)
    spans.set_defaults(handler=_printed(cli_section6.run_spans))
    snap.set_defaults(handler=_printed(cli_section6.run_snapshot))
    cancel, listing = cli_jobs.add_commands(commands, client, defaults)
    cancel.set_defaults(handler=_printed(cli_jobs.run_cancel))
    listing.set_defaults(handler=_printed(cli_jobs.run_exports))

    imgbed = commands.add_parser("imgbed", help="the image bed").add_subparsers(
        dest="imgbed_command", required=True
    )
    up = imgbed.add_parser("upload", parents=[client])
    up.add_argument("file")
    up.add_argument("--path", default="")
    up.add_argument("--filename")
    down = imgbed.add_parser("delete", parents=[client])
    down.add_argument("--path", default="")
    down.add_argument("--filename", required=True)
    for sub in (up, down):
        sub.set_defaults(handler=_imgbed)

    restore = commands.add_parser("restore", help="Glacier restores").add_subparsers(
        dest="restore_command", required=True
    )
    start = restore.add_parser("start", parents=[client])
    start.add_argument("--bucket", required=True)
    start.add_argument("--region", default=defaults.region)
    start.add_argument("--root", default="")
    start.add_argument("--dir", default="")
    start.add_argument("--callback-url", required=True)
    start.add_argument("--tier", default="Standard", choices=["Standard", "Bulk", "Expedited"])
    start.add_argument("--days", type=int, default=3)
    start.add_argument("files", nargs="+")
    status = restore.add_parser("status", parents=[client])
    status.add_argument("task_id")
    ping = restore.add_parser("test-callback", parents=[client])
    ping.add_argument("callback_url")
    for sub in (start, status, ping):
        sub.set_defaults(handler=_restore)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ResourcedError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": exc.code, "message": exc.message}))
        return _fail(f"error {exc.code}: {exc.message}")
    except (OSError, ValueError) as exc:
        return _fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
