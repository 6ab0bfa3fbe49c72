"""The Procfile's `flower`: Celery Flower, only with credentials.

Flower shows task arguments and can revoke tasks; served anonymously it is an open door. So
without FLOWER_BASIC_AUTH (`user:password`) this refuses to start, with one line saying why.
Flower reads FLOWER_BASIC_AUTH from the environment itself, so the password never appears in
the process list. Arguments after the module name go to Flower as they are (--port, --address).
"""

from __future__ import annotations

import os
import sys

from tasks.platform.settings import ConfigError, Settings

EXIT_NO_CREDENTIALS = 78  # EX_CONFIG: a supervisor should not restart it in a loop


def credentials_problem(settings: Settings) -> str | None:
    """Flower takes a comma list of `user:password` pairs: every one must have both parts, or an
    empty pair (`admin:pw,:`) would let anyone in with empty credentials."""
    if not settings.flower_basic_auth:
        return "FLOWER_BASIC_AUTH is not set (user:password); Flower does not serve without credentials"
    for pair in settings.flower_basic_auth.split(","):
        user, sep, password = pair.partition(":")
        if not sep or not user.strip() or not password.strip():
            return "FLOWER_BASIC_AUTH must be user:password[,user:password...], with no part empty"
    return None


def main(argv: list[str]) -> int:
    try:
        problem = credentials_problem(Settings.from_env())
    except ConfigError as exc:
        problem = str(exc)
    if problem is not None:
        print(f"flower: refusing to start: {problem}", file=sys.stderr)
        return EXIT_NO_CREDENTIALS
    args = [sys.executable, "-m", "celery", "-A", "workers.runtime.celery_worker", "flower", *argv]
    os.execv(sys.executable, args)  # noqa: S606 - replace ourselves: signals from the supervisor reach Flower
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
