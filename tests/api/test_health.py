"""Health, readiness, Prometheus metrics, CORS and the OpenAPI error documentation."""
from __future__ import annotations

from fastapi.testclient import TestClient

from api.main import create_app


def test_healthz_and_readyz_need_no_token(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"database": "ok", "broker": "ok"}


def test_prometheus_metrics(client, auth, make_job):
    make_job()
    assert client.get("/metrics").status_code == 401
    # admins only since security row 9 (tests/api/test_tokens.py checks the 403)
    text = client.get("/metrics", headers=auth["root"]).text
    assert 'sam3v_jobs{state="queued"} 1.0' in text
    assert 'sam3v_queue_depth{queue="cpu"}' in text and "sam3v_broker_up 1.0" in text
    assert 'sam3v_request_seconds_count{method="POST",route="/jobs",status="201"} 1.0' in text


def test_openapi_documents_every_error(client):
    paths = client.get("/openapi.json").json()["paths"]
    post = paths["/jobs"]["post"]["responses"]
    assert {"200", "201", "400", "401", "409", "413", "422"} <= set(post)
    assert post["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    download = paths["/jobs/{job_id}/checkpoints/{name}"]["get"]["responses"]
    assert {"206", "401", "404", "416"} <= set(download)
    for path, methods in paths.items():
        for method, spec in methods.items():
            if path not in ("/healthz", "/readyz"):
                assert "401" in spec["responses"], (method, path)


def test_cors_allows_configured_origin_only(settings):
    app = create_app(settings.model_copy(update={"cors_origins": ["https://ui.example"]}))
    with TestClient(app) as c:
        ok = c.options("/jobs", headers={"Origin": "https://ui.example",
                                         "Access-Control-Request-Method": "POST"})
        assert ok.headers["access-control-allow-origin"] == "https://ui.example"
        bad = c.options("/jobs", headers={"Origin": "https://evil.example",
                                          "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in bad.headers
