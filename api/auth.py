"""Bearer API tokens. Only the sha256 of a token is stored (jobstore.tokens creates them);
a lookup hashes the presented token and compares digests in constant time, so neither
the DB nor timing leaks it. An expired or revoked token is refused with that reason."""
from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Engine, select

import jobstore
from jobstore.tokens import hash_token


@dataclass(frozen=True)
class Caller:
    id: int
    name: str
    is_admin: bool


class TokenRejected(Exception):
    """The presented token is not accepted; the message says why (the 401's detail)."""


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def authenticate(engine: Engine, token: str) -> Caller:
    """The token's user, or TokenRejected: "invalid token" (no such token), "token
    expired at ...", "token revoked at ..."."""
    digest = hash_token(token)
    with jobstore.session_scope(engine, write=False) as s:
        row = s.execute(select(jobstore.Token.token_sha256, jobstore.Token.expires_at,
                               jobstore.Token.revoked_at, jobstore.User)
                        .join(jobstore.User, jobstore.User.id == jobstore.Token.user_id)
                        .where(jobstore.Token.token_sha256 == digest)).first()
    if row is None or not hmac.compare_digest(row[0], digest):
        raise TokenRejected("invalid token")
    _, expires_at, revoked_at, user = row
    if revoked_at is not None:
        raise TokenRejected(f"token revoked at {_iso(revoked_at)}")
    if expires_at is not None and expires_at <= time.time():
        raise TokenRejected(f"token expired at {_iso(expires_at)}")
    return Caller(id=user.id, name=user.name, is_admin=user.is_admin)


def lookup_token(engine: Engine, token: str) -> Caller | None:
    """The token's user, or None if it is unknown, expired or revoked."""
    try:
        return authenticate(engine, token)
    except TokenRejected:
        return None


UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}  # on every 401 (api/deps.current_caller)
