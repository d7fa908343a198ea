"""Bearer API tokens. Only the sha256 of a token is stored; a lookup hashes the presented
token and compares digests in constant time, so neither the DB nor timing leaks it."""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from fastapi import HTTPException, Request
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import jobstore
from jobstore.settings import Settings


@dataclass(frozen=True)
class Caller:
    id: int
    name: str
    is_admin: bool


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _session_for(target) -> tuple[Session, bool]:
    """Accept a Session, an Engine or Settings; say whether we own the session."""
    if isinstance(target, Session):
        return target, False
    engine = target if isinstance(target, Engine) else jobstore.get_engine(target)
    return Session(engine, expire_on_commit=False), True


def create_token(session_or_settings: Session | Engine | Settings, user: str, admin: bool = False,
                 *, token_bytes: int = 32, prefix: str = "sam3v_") -> str:
    """Create (or promote to admin) user `user` and return a new token for it. The token is
    shown once; only its hash is kept."""
    if isinstance(session_or_settings, Settings):
        token_bytes, prefix = session_or_settings.token_bytes, session_or_settings.token_prefix
    session, owned = _session_for(session_or_settings)
    token = prefix + secrets.token_urlsafe(token_bytes)
    if not owned:  # the caller's session and transaction; the caller commits
        _add_token(session, user, admin, token)
        return token
    with session, session.begin():
        _add_token(session, user, admin, token)
    return token


def _add_token(session: Session, user: str, admin: bool, token: str) -> None:
    row = session.scalars(select(jobstore.User).where(jobstore.User.name == user)).first()
    if row is None:
        row = jobstore.User(name=user, is_admin=admin, created_at=time.time())
        session.add(row)
        session.flush()
    elif admin and not row.is_admin:
        row.is_admin = True
    session.add(jobstore.Token(user_id=row.id, token_sha256=hash_token(token), created_at=time.time()))
    session.flush()


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


UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def current_caller(request: Request) -> Caller:
    """FastAPI dependency: the caller named by `Authorization: Bearer <token>`, or 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise HTTPException(401, "missing Authorization header (expected 'Bearer <token>')",
                            headers=UNAUTHORIZED)
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "Authorization header must be 'Bearer <token>'", headers=UNAUTHORIZED)
    caller = lookup_token(request.app.state.engine, token.strip())
    if caller is None:
        raise HTTPException(401, "unknown or revoked API token", headers=UNAUTHORIZED)
    return caller

