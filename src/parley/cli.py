"""The `parley` command: `serve`, `migrate`, and `users create` for the first admin."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Sequence

import trio

from parley import service
from parley.config import ConfigError, load_settings, with_jwt_secret


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="parley", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
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
    create.add_argument("--password", help="read from the terminal when omitted")
    create.add_argument("--admin", action="store_true", help="give the user the admin role")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = with_jwt_secret(load_settings())
    except ConfigError as exc:
        sys.exit(f"parley: configuration error: {exc}")

    if args.command == "serve":
        trio.run(service.serve, settings)
    elif args.command == "migrate":
        applied = trio.run(service.migrate_only, settings)
        print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    elif args.command == "users":
        password = args.password or getpass.getpass("password: ")
        role = "admin" if args.admin else "registered"
        try:
            user_id = trio.run(
                service.create_user, settings, args.email, args.username, password, role
            )
        except ValueError as exc:
            sys.exit(f"parley: {exc}")
        print(f"created {role} {args.username} <{args.email}> id={user_id}")
