"""API tokens in the store: create, list and revoke a user's tokens, hash a presented one.

Only the sha256 of a token is stored; the token itself is shown once, to whoever created
it (`sam3v tokens create`, the launcher's first admin token, tests). The API checks
presented tokens against these hashes (api/auth.py) and refuses an expired or revoked
one, saying which. A revoked token stays in the table (revoked_at set), so its holder
is told "token revoked" rather than "invalid token"; `sam3v tokens list` shows it.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from jobstore.db import get_engine
from jobstore.models import Token, User
from jobstore.settings import Settings


FINGERPRINT_CHARS = 12  # of the sha256, shown by `tokens list` (not enough to find the token)
DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_duration(text: str) -> float | None:
    """'30d', '12h', '90m', '3600' (seconds), '2w' -> seconds; 'never' -> None.
    Raises ValueError naming the accepted forms."""
    if text.strip().lower() == "never":
        return None
    match = DURATION.match(text.lower())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration: a positive number with s, m, h, d or w "
                         "(e.g. 30d, 12h), or 'never'")
    return float(int(match.group(1)) * UNITS[match.group(2)])


def _session_for(target) -> tuple[Session, bool]:
    """Accept a Session, an Engine or Settings; say whether we own the session."""
    if isinstance(target, Session):
        return target, False
    engine = target if isinstance(target, Engine) else get_engine(target)
    return Session(engine, expire_on_commit=False), True


def create_token(session_or_settings: Session | Engine | Settings, user: str, admin: bool = False,
                 *, token_bytes: int = 32, prefix: str = "sam3v_",
                 expires_in_s: float | None = None) -> str:
    """Create (or promote to admin) user `user` and return a new token for it, valid for
    `expires_in_s` seconds (None: until revoked). The token is shown once; only its hash
    is kept."""
    if isinstance(session_or_settings, Settings):
        token_bytes, prefix = session_or_settings.token_bytes, session_or_settings.token_prefix
    if expires_in_s is not None and expires_in_s <= 0:
        raise ValueError(f"expires_in_s: must be positive, got {expires_in_s}")
    session, owned = _session_for(session_or_settings)
    token = prefix + secrets.token_urlsafe(token_bytes)
    expires_at = None if expires_in_s is None else time.time() + expires_in_s
    if not owned:  # the caller's session and transaction; the caller commits
        _add_token(session, user, admin, token, expires_at)
        return token
    with session, session.begin():
        _add_token(session, user, admin, token, expires_at)
    return token


@dataclass(frozen=True)
class TokenInfo:
    """A stored token as `sam3v tokens list` shows it (never the token itself)."""
    id: int
    user: str
    is_admin: bool
    fingerprint: str          # the first FINGERPRINT_CHARS hex digits of its sha256
    created_at: float
    expires_at: float | None
    revoked_at: float | None

    def status(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def list_tokens(target: Session | Engine | Settings, user: str | None = None) -> list[TokenInfo]:
    """Every stored token (or `user`'s), oldest first."""
    session, owned = _session_for(target)
    query = (select(Token, User).join(User, User.id == Token.user_id).order_by(Token.id))
    if user is not None:
        query = query.where(User.name == user)
    try:
        return [TokenInfo(t.id, u.name, u.is_admin, t.token_sha256[:FINGERPRINT_CHARS],
                          t.created_at, t.expires_at, t.revoked_at)
                for t, u in session.execute(query).all()]
    finally:
        if owned:
            session.close()


def revoke_tokens(target: Session | Engine | Settings, *, ids: list[int] | None = None,
                  user: str | None = None) -> list[int]:
    """Revoke the tokens with these ids, or every token of `user`; already revoked ones
    are left as they are. Returns the ids revoked now."""
    if (ids is None) == (user is None):
        raise ValueError("revoke_tokens: give ids or user, not both")
    session, owned = _session_for(target)
    condition = (Token.id.in_(ids) if ids is not None else
                 Token.user_id.in_(select(User.id).where(User.name == user)))
    stmt = (update(Token).where(condition, Token.revoked_at.is_(None))
            .values(revoked_at=time.time()).returning(Token.id))
    if not owned:
        return sorted(session.scalars(stmt).all())
    with session, session.begin():
        return sorted(session.scalars(stmt).all())


def _add_token(session: Session, user: str, admin: bool, token: str,
               expires_at: float | None = None) -> None:
    row = session.scalars(select(User).where(User.name == user)).first()
    if row is None:
        row = User(name=user, is_admin=admin, created_at=time.time())
        session.add(row)
        session.flush()
    elif admin and not row.is_admin:
        row.is_admin = True
    session.add(Token(user_id=row.id, token_sha256=hash_token(token), created_at=time.time(),
                      expires_at=expires_at))
    session.flush()
