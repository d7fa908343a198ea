"""Row 4, the API's half: a user's queued and running jobs are limited (429 naming the
limit), and a job's own time limit may only be lower than the server's."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import jobstore
from api.main import create_app
from jobstore.tokens import create_token
from tests.api.conftest import train_body


@pytest.fixture
def limited(settings):
    """The app with a limit of 2 active jobs per user and a 1-hour job time limit."""
    settings = settings.model_copy(update={"max_active_jobs_per_user": 2, "job_time_limit_s": 3600})
    with TestClient(create_app(settings)) as client:
        headers = {name: {"Authorization": f"Bearer {create_token(settings, name, name == 'root')}"}
                   for name in ("alice", "bob", "root")}
        yield client, headers, settings


def test_row4_user_queue_limit(limited):
    client, auth, settings = limited
    first, second = (client.post("/jobs", json=train_body(), headers=auth["alice"]) for _ in range(2))
    assert first.status_code == second.status_code == 201, (first.text, second.text)

    refused = client.post("/jobs", json=train_body(), headers=auth["alice"])
    assert refused.status_code == 429, refused.text
    body = refused.json()
    assert "SAM3V_MAX_ACTIVE_JOBS_PER_USER" in body["detail"] and "limit is 2" in body["detail"]
    assert body["errors"] == ["max_active_jobs_per_user: 2 of 2 in use"]
    # Nothing was stored for the refused request.
    listed = client.get("/jobs", headers=auth["alice"]).json()["items"]
    assert len(listed) == 2

    # Running jobs count as well as queued ones.
    engine = jobstore.get_engine(settings)
    assert jobstore.claim_job(first.json()["id"], "w", 60, engine=engine) is not None
    assert client.post("/jobs", json=train_body(), headers=auth["alice"]).status_code == 429

    # The limit is per user; admins are exempt by default.
    assert client.post("/jobs", json=train_body(), headers=auth["bob"]).status_code == 201
    for _ in range(3):
        assert client.post("/jobs", json=train_body(), headers=auth["root"]).status_code == 201

    # A cancelled job frees its place; retrying it takes a place again (429 when full).
    second_id = second.json()["id"]
    assert client.post(f"/jobs/{second_id}/cancel", headers=auth["alice"]).json()["state"] == "cancelled"
    third = client.post("/jobs", json=train_body(), headers=auth["alice"])
    assert third.status_code == 201, third.text
    retry = client.post(f"/jobs/{second_id}/retry", headers=auth["alice"])
    assert retry.status_code == 429 and "SAM3V_MAX_ACTIVE_JOBS_PER_USER" in retry.json()["detail"]
    client.post(f"/jobs/{third.json()['id']}/cancel", headers=auth["alice"])
    assert client.post(f"/jobs/{second_id}/retry", headers=auth["alice"]).status_code == 200


def test_row4_admins_count_when_not_exempt(settings):
    settings = settings.model_copy(update={"max_active_jobs_per_user": 1,
                                           "admins_exempt_from_job_limit": False})
    with TestClient(create_app(settings)) as client:
        root = {"Authorization": f"Bearer {create_token(settings, 'root', True)}"}
        assert client.post("/jobs", json=train_body(), headers=root).status_code == 201
        refused = client.post("/jobs", json=train_body(), headers=root)
        assert refused.status_code == 429 and "'root'" in refused.json()["detail"]


def test_row4_time_limit_only_downward(limited):
    client, auth, _ = limited
    created = client.post("/jobs", json=train_body(time_limit_s=60), headers=auth["alice"])
    assert created.status_code == 201, created.text
    assert created.json()["time_limit_s"] == 60
    assert client.get(f"/jobs/{created.json()['id']}", headers=auth["alice"]).json()["time_limit_s"] == 60
    default = client.post("/jobs", json=train_body(), headers=auth["bob"]).json()
    assert default["time_limit_s"] is None  # the server's SAM3V_JOB_TIME_LIMIT_S applies

    above = client.post("/jobs", json=train_body(time_limit_s=3601), headers=auth["bob"])
    assert above.status_code == 422
    assert above.json()["errors"][0].startswith("time_limit_s: 3601 s is above this server's limit of 3600 s")
    zero = client.post("/jobs", json=train_body(time_limit_s=0), headers=auth["bob"])
    assert zero.status_code == 422 and zero.json()["errors"][0].startswith("body.time_limit_s:")
