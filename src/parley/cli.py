"""The `parley` command: `serve`, `migrate`, `users create` for the first admin, and `demo`.

Logging goes through the `logging` module in one format, at `--log-level` (default
`PARLEY_LOG_LEVEL`, else INFO). Below DEBUG, libraries that narrate their work at INFO are held to
warnings (`QUIET_LIBRARIES`), so `parley serve` starts with a few lines of its own: version and
environment, database, where it listens, then one line per request (`parley.access`).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Sequence
from functools import partial
from urllib.parse import urlsplit

import trio

from parley import __version__, service
from parley.config import ConfigError, Settings, load_settings, with_jwt_secret

log = logging.getLogger("parley")

QUIET_LIBRARIES = ("pgserver", "hypercorn.error")
"""pgserver logs its choice of socket directory at INFO at every start; Hypercorn's INFO is its
"Running on" line, which `parley.service` says as well."""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="parley", description=__doc__)
    parser.add_argument(
        "--log-level",
        default=os.environ.get("PARLEY_LOG_LEVEL", "INFO"),
        help="logging level: DEBUG, INFO, WARNING or ERROR (default PARLEY_LOG_LEVEL, else INFO)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "serve", help="run the server (embedded PostgreSQL if DATABASE_URL is unset)"
    )
    commands.add_parser("migrate", help="apply pending database migrations and exit")
    users = commands.add_parser("users", help="manage users").add_subparsers(
        dest="users_command", required=True
    )
    create = users.add_parser("create", help="create a user (use --admin for the first admin)")
    create.add_argument("--email", required=True)
    create.add_argument("--username", required=True)
    create.add_argument(
        "--password", help="asked on the terminal when omitted (required without one)"
    )
    create.add_argument("--admin", action="store_true", help="give the user the admin role")
    demo = commands.add_parser(
        "demo", help="seed a demo marketplace and chat (accounts printed once), then serve"
    )
    demo.add_argument("--no-serve", action="store_true", help="seed, print, and exit")
    demo.add_argument(
        "--listings", type=int, default=300, help="how many listings to seed (default 300)"
    )
    args = parser.parse_args(argv)

    level = logging.getLevelNamesMapping().get(args.log_level.upper())
    if level is None:
        parser.error(f"--log-level: unknown level {args.log_level!r}")
    if args.command == "users" and args.password is None and not sys.stdin.isatty():
        # getpass would read the password from stdin (and die at its end with EOFError).
        create.error("no terminal to ask for the password on: give --password")
    configure_logging(level)
    try:
        settings = with_jwt_secret(load_settings())
    except ConfigError as exc:
        sys.exit(f"parley: configuration error: {exc}")

    if args.command == "serve":
        log.info(
            "Parley %s, env %s, database: %s",
            __version__,
            settings.server.env,
            database_description(settings),
        )
        trio.run(service.serve, settings)
    elif args.command == "migrate":
        applied = trio.run(service.migrate_only, settings)
        print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    elif args.command == "users":
        password = args.password
        if password is None:
            try:
                password = getpass.getpass("password: ")
            except EOFError:
                create.error("no password given: type one, or give --password")
        role = "admin" if args.admin else "registered"
        try:
            user_id = trio.run(
                service.create_user, settings, args.email, args.username, password, role
            )
        except ValueError as exc:
            sys.exit(f"parley: {exc}")
        print(f"created {role} {args.username} <{args.email}> id={user_id}")
    elif args.command == "demo":
        from parley.demo import run_demo

        try:
            trio.run(
                partial(run_demo, settings, listings=args.listings, serve_after=not args.no_serve)
            )
        except ValueError as exc:
            sys.exit(f"parley: {exc}")


def configure_logging(level: int) -> None:
    """Parley's log format on the root logger; libraries' INFO narration off unless at DEBUG."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level > logging.DEBUG:
        for name in QUIET_LIBRARIES:
            logging.getLogger(name).setLevel(max(level, logging.WARNING))


def database_description(settings: Settings) -> str:
    """Which PostgreSQL `serve` uses, for the start-up line: never the URL's credentials."""
    if settings.database.url is None:
        return "embedded PostgreSQL (DATABASE_URL unset)"
    parts = urlsplit(str(settings.database.url))
    where = parts.netloc.rpartition("@")[2] + parts.path
    return f"PostgreSQL at {where or 'the default local socket'} (DATABASE_URL)"
