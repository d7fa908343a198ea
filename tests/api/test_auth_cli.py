"""Tokens: stored hashed, checked per request (the `sam3v tokens create` command is tested
in tests/deploy/test_home_and_cli.py)."""
from __future__ import annotations

import hashlib

from sqlalchemy import select

import jobstore
from api.auth import lookup_token


def test_tokens_are_stored_only_as_sha256(client, tokens, engine):
    with jobstore.session_scope(engine, write=False) as s:
        stored = set(s.scalars(select(jobstore.Token.token_sha256)))
    assert stored == {hashlib.sha256(t.encode()).hexdigest() for t in tokens.values()}
    assert not any(t in stored for t in tokens.values())
    caller = lookup_token(engine, tokens["root"])
    assert caller.name == "root" and caller.is_admin
    assert lookup_token(engine, tokens["root"] + "x") is None


def test_malformed_authorization_headers_are_401(client):
    for header in ("Basic abc", "Bearer", "Bearer    ", "token"):
        r = client.get("/jobs", headers={"Authorization": header})
        assert r.status_code == 401 and "Bearer" in r.json()["detail"], header
