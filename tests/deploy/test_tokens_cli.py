"""Row 9, the server-side CLI: `sam3v tokens list|revoke` and `tokens create --expires-in`,
run as real subprocesses against a home's SQLite database."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import jobstore
from api.auth import TokenRejected, authenticate
from jobstore.settings import Settings


def sam3v(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAM3V_")}
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], env=env, capture_output=True,
                          text=True, check=check, cwd=os.getcwd(), timeout=120)


def rejection(engine, token: str) -> str | None:
    try:
        authenticate(engine, token)
    except TokenRejected as err:
        return str(err)
    return None


def test_row9_tokens_list_and_revoke(tmp_path):
    home = str(tmp_path / "home")
    carol = sam3v("tokens", "create", "--user", "carol", "--home", home).stdout.strip()
    dave = sam3v("tokens", "create", "--user", "dave", "--admin", "--expires-in", "never",
                 "--home", home).stdout.strip()
    dave2 = sam3v("tokens", "create", "--user", "dave", "--expires-in", "30d", "--home", home).stdout.strip()
    settings = Settings(home=tmp_path / "home")
    engine = jobstore.get_engine(settings)
    assert all(rejection(engine, t) is None for t in (carol, dave, dave2))

    listed = sam3v("tokens", "list", "--home", home).stdout
    lines = listed.splitlines()
    assert lines[0].split() == ["ID", "USER", "ADMIN", "STATUS", "CREATED", "EXPIRES", "SHA256"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("1", "carol", "no", "active"), ("2", "dave", "yes", "active"), ("3", "dave", "yes", "active")]
    assert rows[1][-2] == "never"
    # The default lifetime is SAM3V_TOKEN_DEFAULT_TTL_S (90 days); --expires-in 30d is 30.
    expiry = {r[0]: r[-3] for r in rows}
    day = 86400
    assert expiry["1"] == time.strftime("%Y-%m-%d", time.gmtime(time.time() + 90 * day))
    assert expiry["3"] == time.strftime("%Y-%m-%d", time.gmtime(time.time() + 30 * day))
    for token in (carol, dave, dave2):  # never a token, only a short fingerprint of its hash
        assert token not in listed and token[6:18] not in listed

    revoked = sam3v("tokens", "revoke", "1", "--home", home)
    assert revoked.stdout.strip() == "revoked token 1 (carol)"
    assert rejection(engine, carol).startswith("token revoked at ")
    again = sam3v("tokens", "revoke", "1", "9", "--home", home, check=False)
    assert again.returncode == 1
    assert "token 1: already revoked" in again.stderr and "token 9: no such token" in again.stderr

    by_user = sam3v("tokens", "revoke", "--user", "dave", "--home", home)
    assert by_user.stdout.strip() == "revoked 2 token(s) of 'dave': 2, 3"
    assert rejection(engine, dave).startswith("token revoked") and rejection(engine, dave2).startswith("token revoked")
    assert [r.split()[3] for r in sam3v("tokens", "list", "--user", "dave", "--home", home).stdout.splitlines()[1:]] \
        == ["revoked", "revoked"]
    assert rejection(engine, "sam3v_made-up") == "invalid token"

    # The home and database it created are the user's alone.
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(home, "sam3v.db")).st_mode) == 0o600


def test_row9_tokens_expire(tmp_path):
    home = str(tmp_path / "home")
    token = sam3v("tokens", "create", "--user", "erin", "--expires-in", "2s", "--home", home).stdout.strip()
    engine = jobstore.get_engine(Settings(home=tmp_path / "home"))
    assert rejection(engine, token) is None
    time.sleep(2.2)
    assert rejection(engine, token).startswith("token expired at ")
    assert sam3v("tokens", "list", "--home", home).stdout.splitlines()[1].split()[3] == "expired"

    for bad in ("0d", "soon", "-1h"):
        refused = sam3v("tokens", "create", "--user", "erin", f"--expires-in={bad}", "--home", home,
                        check=False)
        assert refused.returncode == 2 and refused.stdout == ""
        assert "--expires-in" in refused.stderr and "is not a duration" in refused.stderr, refused.stderr
    neither = sam3v("tokens", "revoke", "--home", home, check=False)
    assert neither.returncode == 2 and "give token ids or --user NAME" in neither.stderr
