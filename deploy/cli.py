"""`sam3v`: the one command a person types (the entry point in pyproject.toml).

    sam3v up [--host H] [--port P] [--home DIR]        the local stack (deploy/launcher.py)
    sam3v tokens create --user NAME [--admin] [--home DIR]
    sam3v submit CONFIG.json [--kind train|eval] [--gpus N] [--url U] [--token T | --home DIR]
    sam3v status JOB_ID    /    sam3v wait JOB_ID [--timeout S]

The HTTP commands (submit, status, wait) and their parser are client/cli.py, which needs
only httpx; this module adds the two that run on the server's side: `up` starts the
stack, `tokens create` writes a token straight into the job store. `tokens` prints only
the token to stdout, so scripts can do TOKEN=$(sam3v tokens create ...).
"""
from __future__ import annotations

import argparse
import os
import sys

from client import cli as client_cli
from deploy import launcher
from deploy.home import settings_env


def add_server_commands(sub) -> None:
    launcher.build_parser(sub.add_parser("up", help="start the local stack (no Docker)"))
    sub.add_parser("tokens", help="manage API tokens (sam3v tokens create --help)", add_help=False)


def build_parser() -> argparse.ArgumentParser:
    return client_cli.build_parser(add_server_commands)


def tokens_main(argv: list[str]) -> int:
    """`sam3v tokens ...`: its own parser, so `sam3v tokens create --help` lists its options."""
    parser = argparse.ArgumentParser(prog="sam3v tokens", description="manage API tokens")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a user's token (the user is created if new)")
    create.add_argument("--user", required=True, help="user name")
    create.add_argument("--admin", action="store_true", help="the user sees every job")
    create.add_argument("--home", help="local stack home (as in `sam3v up --home DIR`)")
    args = parser.parse_args(argv)

    if not args.user.strip():
        parser.error("--user: must not be empty")
    if args.home:
        os.environ.update(settings_env(args.home))
    import jobstore
    from jobstore.settings import Settings
    from jobstore.tokens import create_token

    settings = Settings()
    jobstore.migrate(settings)
    print(create_token(settings, args.user.strip(), args.admin))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["tokens"]:  # everything after `tokens` belongs to the token command
        return tokens_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "up":
        return launcher.up(args.home, args.host, args.port)
    return client_cli.run(args)


if __name__ == "__main__":
    sys.exit(main())
