"""Regression tests for the red team's findings, one or more per row of its table, each
named after its row. The real app, real Redis and SQLite (PostgreSQL where named), and a
real uvicorn where connections matter."""
from __future__ import annotations

from tests.api.conftest import train_body


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
        "Bearer sam3v_not-a-token": "unknown or revoked API token",
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
