"""Row 8 through the real app and SQLite: a deleted job's id is never handed out again
(migration 0004: AUTOINCREMENT on the jobs table)."""
from __future__ import annotations

from tests.api.conftest import train_body


def test_row8_deleted_job_ids_are_never_reused(client, auth):
    h = auth["alice"]
    first = client.post("/jobs", json=train_body(), headers=h).json()["id"]
    newest = client.post("/jobs", json=train_body(), headers=h).json()["id"]
    assert client.post(f"/jobs/{newest}/cancel", headers=h).json()["state"] == "cancelled"
    assert client.delete(f"/jobs/{newest}", headers=h).status_code == 204
    # Someone else submits next: the id alice may still hold must not become bob's job.
    r = client.post("/jobs", json=train_body(), headers=auth["bob"])
    assert r.status_code == 201, r.text
    assert r.json()["id"] > newest > first
    assert client.get(f"/jobs/{newest}", headers=h).status_code == 404
    assert client.get(f"/jobs/{newest}", headers=auth["bob"]).status_code == 404
