"""Row 9, the API's half: a 401 says whether the token is invalid, expired or revoked;
/metrics is for admins; /docs and /openapi.json stay open and reveal nothing private;
the access log of a real uvicorn keeps no query string (a token put in the URL)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

import jobstore
from jobstore.tokens import create_token, list_tokens, revoke_tokens
from tests.api.conftest import free_port, train_body


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_row9_401_says_invalid_expired_or_revoked(client, settings):
    alice = create_token(settings, "alice")
    short = create_token(settings, "alice", expires_in_s=1)
    assert client.get("/jobs", headers=_bearer(short)).status_code == 200

    unknown = client.get("/jobs", headers=_bearer("sam3v_not-a-token"))
    assert unknown.status_code == 401 and unknown.json()["detail"] == "invalid token"
    assert unknown.headers["www-authenticate"] == "Bearer"

    time.sleep(1.2)
    expired = client.get("/jobs", headers=_bearer(short))
    assert expired.status_code == 401 and expired.json()["detail"].startswith("token expired at 20")

    [first] = [t for t in list_tokens(settings, "alice") if t.expires_at is None]
    assert revoke_tokens(settings, ids=[first.id]) == [first.id]
    assert revoke_tokens(settings, ids=[first.id]) == []  # already revoked: left alone
    revoked = client.post("/jobs", json=train_body(), headers=_bearer(alice))
    assert revoked.status_code == 401 and revoked.json()["detail"].startswith("token revoked at 20")
    assert [t.status() for t in list_tokens(settings, "alice")] == ["revoked", "expired"]

    # A new token of the same user works; revoking by user ends every one of them.
    again = create_token(settings, "alice", expires_in_s=3600)
    assert client.get("/jobs", headers=_bearer(again)).status_code == 200
    assert len(revoke_tokens(settings, user="alice")) == 2  # `short` (expired until now), `again`
    assert client.get("/jobs", headers=_bearer(again)).json()["detail"].startswith("token revoked")


def test_row9_metrics_admin_only(client, auth, make_job):
    make_job("alice")
    assert client.get("/metrics").status_code == 401
    refused = client.get("/metrics", headers=auth["alice"])
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"] == "admins only; user 'alice' is not an admin"
    assert "sam3v_jobs" not in refused.text
    allowed = client.get("/metrics", headers=auth["root"])
    assert allowed.status_code == 200 and 'sam3v_jobs{state="queued"} 1.0' in allowed.text


def test_row9_docs_open_but_reveal_nothing_private(client, auth, settings, make_job, engine):
    """The choice: /docs, /redoc and /openapi.json need no token, so they must show only
    the API's shape: no host path, no setting's value, no user, token or job."""
    job = make_job("alice", name="secret-project-name")
    token = auth["alice"]["Authorization"].split(" ", 1)[1]
    with jobstore.session_scope(engine, write=False) as s:
        digests = [t.token_sha256 for t in s.query(jobstore.Token)]
    private = [str(settings.home), str(settings.data_root), str(settings.runs_root),
               settings.database_url, settings.broker_url, "alice", "secret-project-name",
               token, *digests, f"job-{job['id']}"]
    for path in ("/docs", "/redoc", "/openapi.json"):
        r = client.get(path)
        assert r.status_code == 200, path
        leaked = [p for p in private if p in r.text]
        assert leaked == [], (path, leaked)


def test_row9_access_log_has_no_query_strings(settings, tmp_path):
    """A real `python -m api` (uvicorn) with its default access log, as `sam3v up` runs it
    (its output is logs/api.log there)."""
    jobstore.migrate(settings)
    token = create_token(settings, "dora")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAM3V_")}
    env.update(SAM3V_DATABASE_URL=settings.database_url, SAM3V_DATA_ROOT=str(settings.data_root),
               SAM3V_RUNS_ROOT=str(settings.runs_root), SAM3V_BROKER_URL=settings.broker_url,
               SAM3V_GPU_COUNTS="0")
    log_path = tmp_path / "api.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "api", "--port", str(port)],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        assert httpx.get(f"{base}/jobs?token={token}&state=queued").status_code == 401
        assert httpx.get(f"{base}/jobs?token={token}", headers=_bearer(token)).status_code == 200
        assert httpx.get(f"{base}/healthz?api_key=hunter2").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=20)
    text = log_path.read_text()
    assert '"GET /jobs HTTP/1.1" 401' in text and '"GET /jobs HTTP/1.1" 200' in text, text
    assert '"GET /healthz HTTP/1.1" 200' in text, text
    assert token not in text and "hunter2" not in text and "state=queued" not in text, text
