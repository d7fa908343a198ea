"""`sam3v up` end to end: a real Redis, API, Celery worker and torchrun trainer, started
and stopped by the launcher as a person would (Ctrl-C = SIGINT)."""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
FINISHED = {"succeeded", "failed", "cancelled"}


def tiny_train_config(max_steps: int = 4) -> dict:
    """examples/train_tiny.json cut down to what these tests are about, the stack: a few
    steps, a checkpoint every 2 so a stop mid-job has one to resume from, and no validation
    set (base and final evaluation are the trainer's tests' business and cost minutes on a
    busy 2-core machine)."""
    config = json.loads((ROOT / "examples" / "train_tiny.json").read_text())
    config.update(max_steps=max_steps, checkpoint_every=2)
    config["schedule"]["warmup_steps"] = 1
    config["data"].pop("val", None)
    return config


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

    config = tiny_train_config()
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

    # A second launcher on the same home is refused and leaves the running one alone.
    second = run_cli("up", "--home", str(stack.layout.root), "--port", "0", timeout_s=60)
    assert second.returncode == 1 and "in use by another `sam3v up`" in second.stderr
    assert stack.layout.url_file.read_text().strip() == stack.url
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


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_restart_after_a_crash_resumes_the_interrupted_job_from_its_checkpoint(make_stack):
    """Power-loss style stop: every process of the stack is SIGKILLed mid-job, so the job
    still holds its lease. The next start must hand it back at once (not after the lease
    runs out) and the new attempt must resume from the checkpoint, not from step 0."""
    stack = make_stack()
    stack.start()
    checkpoints = None
    with stack.client() as client:
        job_id = client.post("/jobs", json={"kind": "train", "config": tiny_train_config(6)}).json()["id"]
        checkpoints = stack.layout.runs / f"job-{job_id}" / "checkpoints"
        deadline = time.monotonic() + 600
        while not list(checkpoints.glob("step_*.pt")) and time.monotonic() < deadline:
            stack.remember()
            time.sleep(0.5)
    assert list(checkpoints.glob("step_*.pt")), f"no checkpoint within 600 s:\n{stack.output_text()}"
    stack.remember()
    victims = [psutil.Process(stack.proc.pid), *stack.seen.values()]
    for p in victims:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(victims, timeout=30)
    assert stack.leftovers() == []
    # Read after the kill: the trainer may write another checkpoint before SIGKILL lands.
    first = sorted(p.name for p in checkpoints.glob("step_*.pt"))

    again = make_stack()
    again.start()
    with again.client() as client:
        job = wait_for_state(client, job_id, FINISHED, 600, again)
    assert job["state"] == "succeeded", json.dumps(job, indent=2)
    assert job["attempt"] == 2
    assert job["attempts"][0]["reason"] == "the local stack was restarted"
    # The second attempt logged only steps after the checkpoint it resumed from.
    resumed_from = int(first[-1][len("step_"):-len(".pt")])
    log = (again.layout.runs / f"job-{job_id}" / "logs" / "attempt-2.log").read_text()
    assert f"step {resumed_from + 1}/" in log and "step 1/" not in log, log[-3000:]
    assert again.stop(signal.SIGINT) == 0
    assert again.leftovers() == []


def run_cli(*args: str, timeout_s: float = 120) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout_s)


def test_cli_against_a_running_stack(make_stack, tmp_path):
    """sam3v submit / status / tokens over HTTP, with the API's answers passed through."""
    stack = make_stack()
    stack.start()
    home = str(stack.layout.root)

    # The local stack serves CPU jobs only: a GPU job is refused, naming the field.
    refused = run_cli("submit", str(ROOT / "examples" / "train_tiny.json"), "--gpus", "1", "--home", home)
    assert refused.returncode == 2 and "HTTP 422" in refused.stderr and "gpus" in refused.stderr

    missing = run_cli("status", "999", "--home", home)
    assert missing.returncode == 2 and "HTTP 404" in missing.stderr

    token = run_cli("tokens", "create", "--user", "bob", "--home", home)
    assert token.returncode == 0, token.stderr
    bob = token.stdout.strip()
    assert bob and bob != stack.token() and len(token.stdout.splitlines()) == 1
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        assert client.get("/jobs", headers={"Authorization": f"Bearer {bob}"}).status_code == 200
        assert client.get("/jobs", headers={"Authorization": "Bearer sam3v_wrong"}).status_code == 401

    assert stack.stop(signal.SIGINT) == 0
    assert stack.leftovers() == []
