"""Through the HTTP API: train, list metrics and checkpoints, download one, evaluate it;
and an API restart in the middle of a running job loses nothing."""
from __future__ import annotations

import hashlib

import pytest

from tests.worker.conftest import tiny_train, wait_until


def poll_state(client, job_id: int, states: tuple[str, ...], timeout: float) -> dict:
    def done():
        body = client.get(f"/jobs/{job_id}").json()
        return body if body["state"] in states else None
    return wait_until(done, timeout, f"job {job_id} to reach {states}", interval=0.5)


def test_train_then_evaluate_through_http(stack):
    stack.start_worker("w1")
    stack.start_api()
    with stack.http() as client:
        created = client.post("/jobs", json={"kind": "train", "config": tiny_train()})
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        assert created.headers["Location"] == f"/jobs/{job_id}"

        job = poll_state(client, job_id, ("succeeded", "failed", "cancelled"), 180)
        assert job["state"] == "succeeded", job

        series = {s["name"]: s for s in client.get(f"/jobs/{job_id}/metrics").json()["series"]}
        assert [p["step"] for p in series["loss"]["points"]] == list(range(1, 7))
        assert "lr" in series and "loss_bbox" in series

        listed = client.get(f"/jobs/{job_id}/checkpoints").json()["checkpoints"]
        available = {c["name"]: c for c in listed if c["available"]}
        assert set(available) == {"step_0000004.pt", "step_0000006.pt"}  # keep_last 2
        last = available["step_0000006.pt"]
        download = client.get(f"/jobs/{job_id}/checkpoints/step_0000006.pt")
        assert download.status_code == 200
        assert len(download.content) == last["size_bytes"]
        assert hashlib.sha256(download.content).hexdigest() == last["sha256"]

        evaluation = client.post("/jobs", json={"kind": "eval", "config": {
            "model": {"preset": "tiny", "init": {"job_id": job_id}},
            "data": {"dataset": "synthetic-val", "frames_per_clip": 2, "image_size": 112},
            "gpus": 0}})
        assert evaluation.status_code == 201, evaluation.text
        eval_id = evaluation.json()["id"]
        result = poll_state(client, eval_id, ("succeeded", "failed", "cancelled"), 180)
        assert result["state"] == "succeeded", result
        eval_series = client.get(f"/jobs/{eval_id}/metrics").json()["series"]
        assert any(s["name"].startswith("eval/") for s in eval_series), eval_series
        assert (stack.run_dir(eval_id) / "results.json").is_file()


@pytest.mark.slow
def test_api_restart_during_a_running_job_loses_nothing(stack):
    stack.start_worker("w1")
    stack.start_api()
    with stack.http() as client:
        config = tiny_train(max_steps=30, checkpoint_every=10, keep_last=10)
        job_id = client.post("/jobs", json={"kind": "train", "config": config}).json()["id"]
        wait_until(lambda: client.get(f"/jobs/{job_id}").json()["progress"]["step"] >= 2, 180,
                   "training to start")
        stack.stop_api()
        assert stack.job(job_id).state == "running"  # the API is down mid-job
        stack.start_api()
        job = poll_state(client, job_id, ("succeeded", "failed", "cancelled"), 180)
        assert job["state"] == "succeeded", job
        assert job["attempt"] == 1  # the API restart did not disturb the worker
        series = {s["name"]: s for s in client.get(f"/jobs/{job_id}/metrics").json()["series"]}
        assert [p["step"] for p in series["loss"]["points"]] == list(range(1, 31))
        names = {c["name"] for c in client.get(f"/jobs/{job_id}/checkpoints").json()["checkpoints"]}
        assert names == {f"step_{s:07d}.pt" for s in (10, 20, 30)}
