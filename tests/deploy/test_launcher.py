"""`sam3v up` end to end: a real Redis, API, Celery worker and torchrun trainer, started
and stopped by the launcher as a person would (Ctrl-C = SIGINT)."""
from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FINISHED = {"succeeded", "failed", "cancelled"}


def wait_for_state(client, job_id: int, states: set[str], timeout_s: float, stack) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stack.remember()  # catch the worker's trainer processes while they run
        job = client.get(f"/jobs/{job_id}").raise_for_status().json()
        if job["state"] in states:
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout_s} s:\n{stack.output_text()}")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_up_runs_a_job_stops_cleanly_and_restarts_with_the_same_database(make_stack):
    stack = make_stack()
    stack.start()
    home = stack.layout
    token = stack.token()
    assert token and (home.data / "synthetic" / "annotations.json").is_file()
    assert (home.data / "synthetic-val" / "annotations.json").is_file()

    config = json.loads((ROOT / "examples" / "train_tiny.json").read_text())
    with stack.client() as client:
        assert client.get("/readyz").status_code == 200
        created = client.post("/jobs", json={"kind": "train", "config": config})
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        job = wait_for_state(client, job_id, FINISHED, 600, stack)
    assert job["state"] == "succeeded", json.dumps(job, indent=2)
    assert list((home.runs / f"job-{job_id}" / "checkpoints").glob("step_*.pt"))

    assert stack.stop(signal.SIGINT) == 0
    assert stack.seen, "the launcher was never seen with child processes"
    assert stack.leftovers() == []
    assert not home.url_file.exists()

    # Same home again: the first token is reused, the database still holds the job.
    again = make_stack()
    again.start()
    assert again.token() == token
    with again.client() as client:
        job = client.get(f"/jobs/{job_id}").raise_for_status().json()
        listed = [j["id"] for j in client.get("/jobs").raise_for_status().json()["items"]]
    assert job["state"] == "succeeded" and job_id in listed
    assert again.stop(signal.SIGTERM) == 0
    assert again.leftovers() == []


def test_second_start_reuses_demo_data_and_token_without_regenerating(make_stack):
    """First start creates the demo datasets and token once; a restart leaves them alone."""
    stack = make_stack()
    stack.start()
    annotations = stack.layout.data / "synthetic" / "annotations.json"
    first_mtime, token = annotations.stat().st_mtime_ns, stack.token()
    assert oct(stack.layout.token.stat().st_mode & 0o777) == "0o600"
    assert stack.stop(signal.SIGINT) == 0
    assert stack.leftovers() == []
    with sqlite3.connect(stack.layout.database) as db:
        assert db.execute("select count(*) from tokens").fetchone()[0] == 1

    again = make_stack()
    again.start()
    assert again.token() == token
    assert annotations.stat().st_mtime_ns == first_mtime
    assert again.stop(signal.SIGTERM) == 0
    assert again.leftovers() == []
