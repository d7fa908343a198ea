"""`sam3v tokens create --user NAME [--admin] [--home DIR]`: print a new API token.

Only the token goes to stdout, so scripts can do TOKEN=$(sam3v tokens create ...).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from jobstore.settings import Settings


def _home_env(home: str) -> dict[str, str]:
    try:
        from deploy.home import settings_env
    except ImportError:  # the launcher is optional; its layout keeps the DB at DIR/sam3v.db
        root = Path(home).expanduser().resolve()
        return {"SAM3V_HOME": str(root), "SAM3V_DATABASE_URL": f"sqlite:///{root / 'sam3v.db'}"}
    return settings_env(home)


def main(argv: list[str] | None = None) -> int:
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
        os.environ.update(_home_env(args.home))
    import jobstore
    from api.auth import create_token

    settings = Settings()
    jobstore.migrate(settings)
    print(create_token(settings, args.user.strip(), args.admin))
    return 0


if __name__ == "__main__":
    sys.exit(main())
