"""`sam3v`: the one command a person types (the entry point in pyproject.toml).

    sam3v up [--host H] [--port P] [--home DIR]        the local stack (deploy/launcher.py)
    sam3v tokens create --user NAME [--admin] [--expires-in 30d|never] [--home DIR]
    sam3v tokens list [--user NAME] [--home DIR]
    sam3v tokens revoke (ID [ID ...] | --user NAME) [--home DIR]
    sam3v submit | jobs | show | watch | wait | logs | cancel | retry | delete | download ...

The HTTP commands (see client/cli.py's docstring and README.md "The CLI") and their
parser are client/cli.py, which needs
only httpx; this module adds the two that run on the server's side: `up` starts the
stack, `tokens` manages tokens straight in the job store. `tokens create` prints only
the token to stdout, so scripts can do TOKEN=$(sam3v tokens create ...); the token
expires after --expires-in (default SAM3V_TOKEN_DEFAULT_TTL_S, 90 days; `never` for
none). `tokens list` shows ids, users, status and sha256 fingerprints, never a token;
`tokens revoke` revokes by id or every token of a user (the API then answers 401
"token revoked"). Files these commands create are private to the user (umask 077).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone

from client import cli as client_cli
from deploy import launcher
from deploy.home import PRIVATE_UMASK, settings_env


def add_server_commands(sub) -> None:
    launcher.build_parser(sub.add_parser("up", help="start the local stack (no Docker)"))
    sub.add_parser("tokens", help="manage API tokens: create, list, revoke (sam3v tokens --help)",
                   add_help=False)
    sub.add_parser("data", help="datasets on this machine: import (davis, ytvis, sav), "
                   "validate, synthetic (sam3v data --help)", add_help=False)


def build_parser() -> argparse.ArgumentParser:
    return client_cli.build_parser(add_server_commands)


def tokens_main(argv: list[str]) -> int:
    """`sam3v tokens ...`: its own parser, so `sam3v tokens create --help` lists its options."""
    parser = argparse.ArgumentParser(prog="sam3v tokens", description="manage API tokens")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a user's token (the user is created if new)")
    create.add_argument("--user", required=True, help="user name")
    create.add_argument("--admin", action="store_true", help="the user sees every job")
    create.add_argument("--expires-in", metavar="DURATION",
                        help="e.g. 30d, 12h, 90m, 2w or 'never' (default: SAM3V_TOKEN_DEFAULT_TTL_S, "
                             "90 days)")
    listing = sub.add_parser("list", help="list tokens: id, user, status, fingerprint (never the token)")
    listing.add_argument("--user", help="only this user's tokens")
    revoke = sub.add_parser("revoke", help="revoke tokens by id (from `tokens list`) or all of a user's")
    revoke.add_argument("ids", nargs="*", type=int, metavar="ID", help="token ids")
    revoke.add_argument("--user", help="revoke every token of this user")
    for command in (create, listing, revoke):
        command.add_argument("--home", help="local stack home (as in `sam3v up --home DIR`)")
    args = parser.parse_args(argv)

    expires_in_s = None
    if args.command == "create":
        if not args.user.strip():
            parser.error("--user: must not be empty")
        if args.expires_in is not None:
            from jobstore.tokens import parse_duration
            try:
                expires_in_s = parse_duration(args.expires_in)
            except ValueError as err:
                parser.error(f"--expires-in: {err}")
    if args.command == "revoke" and bool(args.ids) == bool(args.user):
        parser.error("revoke: give token ids or --user NAME (not both)")
    os.umask(PRIVATE_UMASK)  # a database (and home) this creates is the user's alone
    if args.home:
        os.environ.update(settings_env(args.home))
    import jobstore
    from jobstore import tokens
    from jobstore.settings import Settings

    settings = Settings()
    jobstore.migrate(settings)
    if args.command == "create":
        if args.expires_in is None and settings.token_default_ttl_s:
            expires_in_s = float(settings.token_default_ttl_s)
        print(tokens.create_token(settings, args.user.strip(), args.admin, expires_in_s=expires_in_s))
        return 0
    if args.command == "list":
        print_tokens(tokens.list_tokens(settings, args.user))
        return 0
    if args.user:
        revoked = tokens.revoke_tokens(settings, user=args.user)
        print(f"revoked {len(revoked)} token(s) of {args.user!r}"
              + (f": {', '.join(map(str, revoked))}" if revoked else ""))
        return 0
    revoked = set(tokens.revoke_tokens(settings, ids=args.ids))
    known = {t.id: t for t in tokens.list_tokens(settings)}
    code = 0
    for token_id in args.ids:
        if token_id in revoked:
            print(f"revoked token {token_id} ({known[token_id].user})")
        elif token_id in known:
            print(f"token {token_id}: already revoked", file=sys.stderr)
        else:
            print(f"token {token_id}: no such token", file=sys.stderr)
            code = 1
    return code


def _when(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M")


def print_tokens(rows) -> None:
    """One line per token; times in UTC."""
    now = time.time()
    table = [("ID", "USER", "ADMIN", "STATUS", "CREATED", "EXPIRES", "SHA256")]
    table += [(str(t.id), t.user, "yes" if t.is_admin else "no", t.status(now), _when(t.created_at),
               "never" if t.expires_at is None else _when(t.expires_at), t.fingerprint + "...")
              for t in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["tokens"]:  # everything after `tokens` belongs to the token command
        return tokens_main(argv[1:])
    if argv[:1] == ["data"]:  # `python -m sam3_video.data` under the one command
        from sam3_video.data.__main__ import main as data_main
        return data_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "up":
        return launcher.up(args.home, args.host, args.port)
    return client_cli.run(args)


if __name__ == "__main__":
    sys.exit(main())
