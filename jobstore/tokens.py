"""API tokens in the store: create a user's token, hash a presented one.

Only the sha256 of a token is stored; the token itself is shown once, to whoever created
it (`sam3v tokens create`, the launcher's first admin token, tests). The API checks
presented tokens against these hashes (api/auth.py).
"""
from __future__ import annotations

import hashlib
import secrets
import time

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from jobstore.db import get_engine
from jobstore.models import Token, User
from jobstore.settings import Settings


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _session_for(target) -> tuple[Session, bool]:
    """Accept a Session, an Engine or Settings; say whether we own the session."""
    if isinstance(target, Session):
        return target, False
    engine = target if isinstance(target, Engine) else get_engine(target)
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
    row = session.scalars(select(User).where(User.name == user)).first()
    if row is None:
        row = User(name=user, is_admin=admin, created_at=time.time())
        session.add(row)
        session.flush()
    elif admin and not row.is_admin:
        row.is_admin = True
    session.add(Token(user_id=row.id, token_sha256=hash_token(token), created_at=time.time()))
    session.flush()
