"""LoRA through the whole service: a LoRA training job submitted over HTTP to the local
stack trains only its adapters, keeps a small checkpoint, and an evaluation job and a
predict job then use that adapter checkpoint directly (model.init.job_id)."""
from __future__ import annotations

import json
import signal

import pytest

from .test_launcher import FINISHED, tiny_train_config, wait_for_state


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_lora_job_and_the_jobs_that_use_its_adapters(make_stack):
    stack = make_stack()
    stack.start()
    train = tiny_train_config(4)
    train["model"]["lora"] = {"rank": 4, "alpha": 8}
    with stack.client() as client:
        created = client.post("/jobs", json={"kind": "train", "config": train})
        assert created.status_code == 201, created.text
        job = wait_for_state(client, created.json()["id"], FINISHED, 600, stack)
        assert job["state"] == "succeeded", json.dumps(job, indent=2)
        params = job["parameters"]
        assert 0 < params["trainable"] < params["total"] / 20  # only the adapters train
        (latest,) = [c for c in client.get(f"/jobs/{job['id']}/checkpoints").json()["checkpoints"]
                     if c["name"] == "step_0000004.pt"]
        assert latest["size_bytes"] < 2 * 1024**2  # adapters, not the 51 MB model

        init = {"preset": "tiny", "init": {"job_id": job["id"]}}
        evaluation = client.post("/jobs", json={"kind": "eval", "config": {
            "task": "detect", "model": init, "data": {"dataset": "synthetic-val"}, "gpus": 0}})
        predict = client.post("/jobs", json={"kind": "predict", "config": {
            "task": "detect", "model": init, "gpus": 0,
            "data": {"video": "synthetic-val/JPEGImages/video_000", "phrases": ["red square"]}}})
        assert evaluation.status_code == 201 and predict.status_code == 201, (evaluation.text, predict.text)
        for created in (evaluation, predict):
            done = wait_for_state(client, created.json()["id"], FINISHED, 600, stack)
            assert done["state"] == "succeeded", json.dumps(done, indent=2)
        results = json.loads((stack.layout.runs / f"job-{evaluation.json()['id']}"
                              / "results.json").read_text())
        assert results["weights"].endswith(f"job-{job['id']}/checkpoints/step_0000004.pt")
        assert 0.0 <= results["metrics"]["mask_ap"] <= 1.0
        page = client.get(f"/jobs/{predict.json()['id']}/predictions").json()
        assert page["frames"] > 0 and "masklets" in page
    assert stack.stop(signal.SIGINT) == 0
