"""Regression tests for the red team's findings, one or more per row of its table, each
named after its row. The real app, real Redis and SQLite (PostgreSQL where named), and a
real uvicorn where connections matter."""
from __future__ import annotations

import contextlib
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx
import redis
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient

import jobstore
from api.main import create_app
from api.routes.metrics import downsample
from jobstore.tokens import create_token
from tests.api.conftest import train_body
from tests.jobstore.test_postgres import postgres_url  # noqa: F401 (a fixture: a real PostgreSQL)
from tests.support.procs import free_port, kill_tree, wait_until


# Row 12: the OpenAPI document declares the bearer auth ------------------------------------

UNAUTHENTICATED = {"/healthz", "/readyz"}


def test_row12_openapi_declares_bearer_auth_on_every_authenticated_operation(client):
    doc = client.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    names = [n for n, s in schemes.items() if s.get("type") == "http" and s.get("scheme") == "bearer"]
    assert len(names) == 1, schemes
    requirement = {names[0]: []}
    operations = [(path, method, op) for path, methods in doc["paths"].items()
                  for method, op in methods.items()]
    assert len(operations) >= 10
    for path, method, op in operations:
        if path in UNAUTHENTICATED:
            assert "security" not in op, (method, path)
        else:
            assert op.get("security") == [requirement], (method, path)


def test_row12_bearer_scheme_keeps_the_401_messages(client, auth):
    cases = {
        None: "missing Authorization header (expected 'Bearer <token>')",
        "Basic dXNlcjpwdw==": "Authorization header must be 'Bearer <token>'",
        "Bearer": "Authorization header must be 'Bearer <token>'",
        "Bearer    ": "Authorization header must be 'Bearer <token>'",
        "Bearer sam3v_not-a-token": "invalid token",
    }
    for header, detail in cases.items():
        r = client.get("/jobs", headers={"Authorization": header} if header is not None else {})
        assert r.status_code == 401, (header, r.text)
        assert r.json()["detail"] == detail, header
        assert r.headers["www-authenticate"] == "Bearer"
    assert client.get("/metrics").status_code == 401
    token = auth["alice"]["Authorization"].split(" ", 1)[1]
    for header in (f"Bearer {token}", f"bearer {token}", f"Bearer   {token}  "):
        assert client.get("/jobs", headers={"Authorization": header}).status_code == 200, header
    assert client.post("/jobs", json=train_body(), headers=auth["bob"]).status_code == 201


# Row 7: inputs that gave a 500 ---------------------------------------------------------

def _nested_body(depth: int) -> bytes:
    """A POST /jobs body whose config holds `depth` nested objects (built as text: the
    json module itself recurses)."""
    config = ('{"data": {"train": "synthetic", "val": "synthetic-val"}, "extra": '
              + '{"a": ' * depth + "1" + "}" * depth + "}")
    return ('{"kind": "train", "name": "deep", "config": ' + config + "}").encode()


def test_row7_deeply_nested_config_is_a_422(client, auth):
    headers = {**auth["alice"], "Content-Type": "application/json"}
    for depth in (300, 950, 40):
        for key in (None, f"deep-{depth}"):  # Idempotency-Key hashes the body
            h = {**headers, "Idempotency-Key": key} if key else headers
            r = client.post("/jobs", content=_nested_body(depth), headers=h)
            assert r.status_code == 422, (depth, r.text)
            detail = r.json()["detail"]
            assert "body.config" in detail and "nested more than 32 levels" in detail, detail
    # Deeper than json.loads recurses: FastAPI's bare "error parsing the body" names it now.
    r = client.post("/jobs", content=_nested_body(5000), headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("body: JSON nested too deeply") and "32" in r.json()["detail"]
    # Within the limit the config is checked as before (an unknown field, named).
    r = client.post("/jobs", content=_nested_body(5), headers=headers)
    assert r.status_code == 422 and "config.extra" in r.text, r.text
    assert client.post("/jobs", json=train_body(), headers=auth["alice"]).status_code == 201


def _raw_get(app, url: str, headers: dict[str, bytes]) -> httpx.Response:
    """GET through httpx's ASGI transport, which passes header bytes as they are (the
    TestClient re-encodes them as UTF-8, so it cannot send the latin-1 byte 0xb2 that a
    real server hands the app as "²")."""
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
            return await c.get(url, headers=headers)
    return anyio.run(go)


def test_row7_last_event_id_of_non_ascii_digits_is_a_400(app, client, auth, make_job, engine):
    job = make_job()
    url = f"/jobs/{job['id']}/events"
    token = auth["alice"]["Authorization"].encode()
    for value in ("²", "1²", "12³", "¹", "-1", "1e3", "", "4611686018427387905"):
        r = _raw_get(app, url, {"Authorization": token, "Last-Event-ID": value.encode("latin-1")})
        assert r.status_code == 400, (value, r.text)
        assert r.json()["detail"].startswith("Last-Event-ID header: must be an event id"), value
    # A valid id still resumes (a finished job's stream ends by itself).
    jobstore.cancel_job(job["id"], engine=engine)
    r = _raw_get(app, url, {"Authorization": token, "Last-Event-ID": b" 1 "})
    assert r.status_code == 200 and "id: 1\n" not in r.text and "event: state" in r.text, r.text


def test_row7_oversized_numbers_in_headers_and_body_are_4xx(client, auth, make_job, engine, settings):
    from sam3_video.run_layout import job_dir

    h = auth["alice"]
    r = client.post("/jobs", content=b"{}", headers={**h, "Content-Type": "application/json",
                                                     "Content-Length": "1" * 5000})
    assert r.status_code == 413 and "SAM3V_MAX_BODY_BYTES" in r.json()["detail"], r.text
    r = client.post("/jobs", content=b"{}", headers={**h, "Content-Type": "application/json",
                                                     "Content-Length": "0" * 5000 + "2"})
    assert r.status_code != 500 and r.status_code < 500, r.text
    big = b'{"kind": "train", "config": {}, "priority": ' + b"7" * 5000 + b"}"
    r = client.post("/jobs", content=big, headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["detail"].startswith("body: malformed JSON"), r.text

    job = make_job()
    jobstore.claim_job(job["id"], "w", 60, engine=engine)
    ckpt = job_dir(settings.runs_root, job["id"]) / "checkpoints" / "step_0000005.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x" * 100)
    jobstore.add_checkpoint(job["id"], "step_0000005.pt", 5, 100, "0" * 64, str(ckpt), engine=engine)
    url = f"/jobs/{job['id']}/checkpoints/step_0000005.pt"
    for value in ("bytes=" + "1" * 5000 + "-", "bytes=0-" + "9" * 5000, "bytes=-" + "0" * 5000 + "1",
                  "bytes=²-3", "bytes=٣-4"):
        r = client.get(url, headers={**h, "Range": value.encode("utf-8")})
        assert r.status_code == 416, (value[:20], r.text)
        assert r.json()["detail"].startswith("Range header:"), r.text
    assert client.get(url, headers={**h, "Range": "bytes=0-9"}).content == b"x" * 10


# Row 5: GET /jobs/{id}/metrics downsamples in SQL -----------------------------------------

def _metric_rows(job_id: int) -> list[dict]:
    """~300k points: a dense decaying loss with spikes and NaN holes (stored as NULL), a
    series logged every 7 steps with an all-null stretch, and a short one."""
    rng = random.Random(5)
    rows = []
    for step in range(250_000):
        value = 5 * math.exp(-step / 60_000) + rng.random() * 0.1
        if step % 9_973 == 0:
            value = None
        elif step % 31_337 == 0:
            value = 40.0 + step  # a spike every-Nth sampling would drop
        rows.append(dict(job_id=job_id, name="loss", step=step, value=value, time=1e6 + step, attempt=1))
    for k in range(7_000):
        step = 100 + 7 * k
        value = None if 3_000 <= k < 3_200 else math.sin(k / 50)
        rows.append(dict(job_id=job_id, name="grad_norm", step=step, value=value, time=2e6 + step, attempt=1))
    rows += [dict(job_id=job_id, name="lr", step=s, value=1e-4, time=3e6 + s, attempt=1) for s in range(300)]
    return rows


def _expected(rows: list[dict], name: str, since_step: int, max_points: int) -> tuple[int, list[dict]]:
    """The Python reference (api.routes.metrics.downsample) over the same rows."""
    points = sorted((r["step"], r["value"], r["time"]) for r in rows
                    if r["name"] == name and r["step"] >= since_step)
    return len(points), [{"step": s, "value": v, "time": t} for s, v, t in downsample(points, max_points)]


def _check_metrics(client, headers, job_id, rows, max_points, since_step=0, names=None):
    query = f"max_points={max_points}&since_step={since_step}" + (f"&names={','.join(names)}" if names else "")
    r = client.get(f"/jobs/{job_id}/metrics?{query}", headers=headers)
    assert r.status_code == 200, r.text
    series = {s["name"]: s for s in r.json()["series"]}
    wanted = sorted({row["name"] for row in rows if row["step"] >= since_step
                     and (names is None or row["name"] in names)})  # series with points
    assert sorted(series) == sorted(wanted)
    for name in wanted:
        total, points = _expected(rows, name, since_step, max_points)
        assert series[name]["total_points"] == total, name
        assert len(series[name]["points"]) <= max_points, name
        assert series[name]["points"] == points, (name, max_points, since_step)
    return series


def test_row5_metrics_are_downsampled_in_sql_not_in_python(client, auth, make_job, engine):
    job = make_job()
    jobstore.claim_job(job["id"], "w", 60, engine=engine)
    rows = _metric_rows(job["id"])
    with jobstore.session_scope(engine) as s:  # one bulk INSERT through SQLAlchemy
        s.execute(sa.insert(jobstore.Metric), rows)

    fetched = []  # rows the DB cursor hands back, per statement (pysqlite's row_factory)

    def count_rows(conn, cursor, statement, parameters, context, executemany):
        fetched.append(0)
        cursor.row_factory = lambda _cursor, row: fetched.__setitem__(-1, fetched[-1] + 1) or row

    sa.event.listen(engine, "after_cursor_execute", count_rows)
    try:
        series = _check_metrics(client, auth["alice"], job["id"], rows, max_points=1000)
    finally:
        sa.event.remove(engine, "after_cursor_execute", count_rows)
    assert {n: s["total_points"] for n, s in series.items()} == {"loss": 250_000, "grad_norm": 7_000, "lr": 300}
    # No statement returned more than one series' max_points rows; all together about
    # what the answer holds (plus the token, the job and the per-series counts).
    assert max(fetched) <= 1000 and sum(fetched) <= 2 * 1000 + 300 + 20, fetched
    loss = [p["value"] for p in series["loss"]["points"]]
    assert all(40.0 + 31_337 * k in loss for k in range(1, 8))  # every spike survives
    assert None in [p["value"] for p in series["grad_norm"]["points"]]  # and the null stretch

    for max_points, since_step, names in ((37, 0, None), (2, 0, ["loss"]), (500, 123_457, ["loss", "lr"]),
                                          (1000, 20_000, ["grad_norm"]), (100_000, 0, ["grad_norm"])):
        _check_metrics(client, auth["alice"], job["id"], rows, max_points, since_step, names)


def test_row5_metrics_downsampling_is_the_same_on_postgres(postgres_url, settings):
    pg = settings.model_copy(update={"database_url": postgres_url})
    with TestClient(create_app(pg)) as client:
        engine = jobstore.get_engine(pg)
        assert engine.dialect.name == "postgresql"
        headers = {"Authorization": f"Bearer {create_token(pg, 'metrics-pg')}"}
        created = client.post("/jobs", json=train_body(), headers=headers)
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        jobstore.claim_job(job_id, "w", 60, engine=engine)
        rows = [r for r in _metric_rows(job_id) if r["name"] != "loss" or r["step"] < 30_000]
        with jobstore.session_scope(engine) as s:
            s.execute(sa.insert(jobstore.Metric), rows)
        for max_points, since_step, names in ((1000, 0, None), (37, 5, None), (2, 0, ["grad_norm"]),
                                              (500, 12_345, ["loss", "lr"])):
            _check_metrics(client, headers, job_id, rows, max_points, since_step, names)


# Row 6: connections are bounded -----------------------------------------------------------

@contextlib.contextmanager
def served_api(settings, **env_overrides):
    """`python -m api` (as the launcher, the image and compose start it), configured by
    environment variables only, on a free loopback port; yields its base URL. Its stderr
    is checked for tracebacks at the end."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAM3V_")}
    env.update(SAM3V_DATABASE_URL=settings.database_url, SAM3V_DATA_ROOT=str(settings.data_root),
               SAM3V_RUNS_ROOT=str(settings.runs_root), SAM3V_BROKER_URL=settings.broker_url,
               SAM3V_GPU_COUNTS="0", SAM3V_SSE_POLL_SECONDS="0.05", **env_overrides)
    log = tempfile.TemporaryFile()
    server = subprocess.Popen([sys.executable, "-m", "api", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up():
        assert server.poll() is None, "python -m api exited"
        try:
            return httpx.get(base + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False
    try:
        wait_until(up, 30, "python -m api to answer /healthz", interval=0.1)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            kill_tree(server)
        log.seek(0)
        output = log.read().decode(errors="replace")
        log.close()
    assert "Traceback" not in output, output


def _open(port: int, payload: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if payload:
        sock.sendall(payload)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):  # b"" once the server closed it; 10 s socket timeout
        data += chunk
    return data


def test_row6_half_sent_requests_are_closed_within_the_read_timeout(settings):
    timeout = 1.5
    with served_api(settings, SAM3V_API_READ_TIMEOUT_S=str(timeout)) as base:
        port = int(base.rsplit(":", 1)[1])
        half = {
            "nothing": b"",
            "half a request line": b"GET /heal",
            "half the headers": b"GET /healthz HTTP/1.1\r\nHost: api\r\nX-Slow: 1",
            "half a body": (b"POST /jobs HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 1000\r\n\r\n{\"kind\": "),
            "a kept-alive second request, half sent": (b"GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n"
                                                       b"GET /healthz HTTP/1.1\r\nHo"),
        }
        started = time.monotonic()
        sockets = [(what, _open(port, payload)) for what, payload in half.items() for _ in range(4)]
        assert len(sockets) == 20
        # Meanwhile the server answers whole requests.
        assert httpx.get(base + "/healthz", timeout=5).status_code == 200
        for what, sock in sockets:
            with sock:
                data = _read_until_closed(sock)
            elapsed = time.monotonic() - started
            assert elapsed < timeout + 5, (what, elapsed)
            if what in ("half a request line", "half the headers"):
                assert data.startswith(b"HTTP/1.1 408 "), (what, data)
                assert b"SAM3V_API_READ_TIMEOUT_S" in data
            elif what == "a kept-alive second request, half sent":
                assert data.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 408 " in data, data
            else:
                assert b"HTTP/1.1 2" not in data, (what, data)
        assert time.monotonic() - started >= timeout  # not before the timeout
        assert httpx.get(base + "/healthz", timeout=5).status_code == 200


def test_row6_concurrency_limit_answers_503_past_it(settings):
    limit = 8
    with served_api(settings, SAM3V_API_LIMIT_CONCURRENCY=str(limit), SAM3V_API_READ_TIMEOUT_S="3") as base:
        port = int(base.rsplit(":", 1)[1])
        idle = [_open(port, b"") for _ in range(limit)]
        try:
            def refused():
                with httpx.Client(timeout=5) as c:  # a fresh connection each try
                    return c.get(base + "/healthz").status_code == 503
            wait_until(refused, 5, "a request past the limit to get 503", interval=0.1)
            # The read timeout frees the slots the idle sockets held.
            for sock in idle:
                with sock:
                    assert _read_until_closed(sock) == b""
            assert httpx.get(base + "/healthz", timeout=5).status_code == 200
        finally:
            for sock in idle:
                sock.close()


def test_row6_event_streams_are_capped_per_user(settings):
    with served_api(settings, SAM3V_SSE_MAX_STREAMS_PER_USER="2") as base:
        alice = {"Authorization": f"Bearer {create_token(settings, 'alice')}"}
        bob = {"Authorization": f"Bearer {create_token(settings, 'bob')}"}
        job = httpx.post(base + "/jobs", json=train_body(), headers=alice, timeout=30)
        assert job.status_code == 201, job.text
        url = f"{base}/jobs/{job.json()['id']}/events"  # queued: its stream stays open
        with contextlib.ExitStack() as stack:
            def stream(headers):
                client = stack.enter_context(httpx.Client(timeout=10))
                return stack.enter_context(client.stream("GET", url, headers=headers))
            first, second = stream(alice), stream(alice)
            assert first.status_code == second.status_code == 200
            r = httpx.get(url, headers=alice, timeout=10)
            assert r.status_code == 429, r.text
            assert r.json()["detail"] == ("user 'alice' already has 2 event streams open; the limit "
                                          "is 2 (SAM3V_SSE_MAX_STREAMS_PER_USER): close one first")
            # Another user's streams are counted apart (an admin sees alice's job).
            root = {"Authorization": f"Bearer {create_token(settings, 'root', True)}"}
            assert stream(root).status_code == 200
            assert httpx.get(url, headers=bob, timeout=10).status_code == 404
            # A closed stream gives its slot back.
            first.close()

            def reopened():
                with httpx.Client(timeout=10) as c, c.stream("GET", url, headers=alice) as r:
                    return r.status_code == 200
            wait_until(reopened, 10, "alice's closed stream to free its slot", interval=0.1)


def test_row6_readyz_reuses_one_redis_connection(client, redis_url):
    counter = redis.Redis.from_url(redis_url)  # connected by its first command, below

    def connections_received() -> int:
        return int(counter.info("stats")["total_connections_received"])
    before = connections_received()
    for _ in range(30):
        assert client.get("/readyz").json() == {"database": "ok", "broker": "ok"}
    assert connections_received() - before <= 1  # the pool's one connection, if new


def test_row6_readyz_errors_name_no_url_host_or_database(settings):
    pg_port, redis_port = free_port(), free_port()  # nothing listens on either
    down = settings.model_copy(update={
        "database_url": f"postgresql://sam3v_secret_user:pw@127.0.0.1:{pg_port}/secret_db_name",
        "broker_url": f"redis://:secret_pw@127.0.0.1:{redis_port}/7"})
    client = TestClient(create_app(down))  # no lifespan: it would migrate the absent database
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"detail": "not ready: database unavailable; broker unavailable",
                        "errors": ["database unavailable", "broker unavailable"]}
    for secret in ("127.0.0.1", str(pg_port), str(redis_port), "secret", "postgres", "redis", "/7"):
        assert secret not in r.text, secret


def test_row6_every_start_command_serves_through_python_m_api():
    """The limits are in `python -m api`; plain `uvicorn api.main:app` has none of them."""
    root = Path(__file__).resolve().parents[2]
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    assert "exec python -m api --host 0.0.0.0 --port 8000" in compose["services"]["api"]["command"][-1]
    assert 'CMD ["python", "-m", "api", "--host", "0.0.0.0", "--port", "8000"]' in (
        root / "deploy" / "Dockerfile").read_text()
    launcher = (root / "deploy" / "launcher.py").read_text()
    assert '[sys.executable, "-m", "api", "--host"' in launcher and '"-m", "uvicorn"' not in launcher
    from api.server import RequestTimeoutH11Protocol, uvicorn_config
    from jobstore.settings import Settings
    config = uvicorn_config(Settings(api_limit_concurrency=99, api_keep_alive_s=3, api_read_timeout_s=7),
                            "127.0.0.1", 8000)
    assert config.limit_concurrency == 99 and config.timeout_keep_alive == 3
    assert config.http.func is RequestTimeoutH11Protocol and config.http.keywords == {"read_timeout_s": 7}
    defaults = Settings()
    assert (defaults.api_read_timeout_s, defaults.api_limit_concurrency, defaults.sse_max_streams_per_user) == (15, 256, 8)
