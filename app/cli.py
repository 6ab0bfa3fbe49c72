"""The `resourced` command: operator and client tasks that speak to the service."""

from __future__ import annotations

import argparse
import sys

import redis

from app.auth import make_backend
from tasks.settings import ConfigError, Settings


def _session_issue(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    client = redis.Redis.from_url(settings.redis_url)
    try:
        backend = make_backend(settings, client)
        ttl = args.ttl or settings.session_ttl_s
        print(backend.issue(args.user, ttl, service=args.service))
    except ConfigError as exc:
        print(f"resourced: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        print(f"resourced: session store unreachable: {exc}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="resourced", description="resourced media service")
    commands = parser.add_subparsers(dest="command", required=True)

    session = commands.add_parser("session", help="sessions for clients")
    session_commands = session.add_subparsers(dest="session_command", required=True)
    issue = session_commands.add_parser("issue", help="print a SessionId the running service accepts")
    issue.add_argument("--user", required=True, help="the user the session belongs to")
    issue.add_argument(
        "--ttl", type=int, default=0, help="lifetime in seconds (default RESOURCED_SESSION_TTL)"
    )
    issue.add_argument(
        "--service", action="store_true", help="an internal service caller (acts for any user)"
    )
    issue.set_defaults(handler=_session_issue)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
