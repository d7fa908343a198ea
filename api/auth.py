"""Bearer API tokens. Only the sha256 of a token is stored (jobstore.tokens creates them);
a lookup hashes the presented token and compares digests in constant time, so neither
the DB nor timing leaks it."""
from __future__ import annotations

import hmac
from dataclasses import dataclass

from sqlalchemy import Engine, select

import jobstore
from jobstore.tokens import hash_token


@dataclass(frozen=True)
class Caller:
    id: int
    name: str
    is_admin: bool


def lookup_token(engine: Engine, token: str) -> Caller | None:
    digest = hash_token(token)
    with jobstore.session_scope(engine, write=False) as s:
        row = s.execute(select(jobstore.Token.token_sha256, jobstore.User)
                        .join(jobstore.User, jobstore.User.id == jobstore.Token.user_id)
                        .where(jobstore.Token.token_sha256 == digest)).first()
    if row is None or not hmac.compare_digest(row[0], digest):
        return None
    user = row[1]
    return Caller(id=user.id, name=user.name, is_admin=user.is_admin)


UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}  # on every 401 (api/deps.current_caller)
