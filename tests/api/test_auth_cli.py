"""Tokens: stored hashed, created by the CLI (`sam3v tokens create`), checked per request."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

from sqlalchemy import select

import jobstore
from api.auth import lookup_token
from jobstore.settings import Settings


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


def test_cli_prints_only_a_working_token(tmp_path, redis_url):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAM3V_")}
    out = subprocess.run([sys.executable, "-m", "api.tokens_cli", "create", "--user", "carol",
                          "--admin", "--home", str(home)], env=env, capture_output=True,
                         text=True, check=True, cwd=os.getcwd()).stdout
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sam3v_")
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'sam3v.db'}", broker_url=redis_url)
    caller = lookup_token(jobstore.get_engine(settings), lines[0])
    assert caller.name == "carol" and caller.is_admin
    bad = subprocess.run([sys.executable, "-m", "api.tokens_cli", "create", "--home", str(home)],
                         env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "--user" in bad.stderr and bad.stdout == ""
