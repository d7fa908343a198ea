"""Row 1: what a job spec can make the trainer run, and what the trainer can see.

A weights file is only ever read with torch.load(weights_only=True) (sam3_video.weights),
so a crafted pickle named as model.init.path fails the job with a clear message and runs
nothing; and the trainer gets an allowlisted environment (worker.launch.child_env), so even
code that did run could not read the worker's database or broker URL or any password.
Everything goes through the real stack: HTTP API, Redis, a Celery worker, torchrun.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import torch

from tests.worker.conftest import REPO, tiny_train, wait_until
from worker.launch import child_env

FINAL = ("succeeded", "failed", "cancelled")
SECRET = "hunter2-not-for-trainers"


class MarkerPayload:
    """Unpickling this runs `touch MARKER` (what a malicious weights file would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def crafted_weights(path: Path, marker: Path) -> Path:
    """A .pt that looks like a training checkpoint, with the payload among its tensors."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {"w": torch.zeros(2), "evil": MarkerPayload(marker)}, "step": 1}, path)
    return path


def assert_payload_is_live(path: Path, marker: Path) -> None:
    """The file really runs its payload when loaded the unsafe way (in a throwaway process),
    so the marker staying absent below means something."""
    subprocess.run([sys.executable, "-c", "import sys, torch; "
                    "torch.load(sys.argv[1], weights_only=False)", str(path)],
                   check=True, capture_output=True, cwd=REPO, timeout=120)
    assert marker.exists(), "the crafted pickle did not run its payload"
    marker.unlink()


def poll_final(client, job_id: int, timeout: float) -> dict:
    def done():
        body = client.get(f"/jobs/{job_id}").json()
        return body if body["state"] in FINAL else None
    return wait_until(done, timeout, f"job {job_id} to finish", interval=0.5)


def test_row1_crafted_pickle_as_weights_never_runs(stack, tmp_path):
    marker = tmp_path / "PWNED"
    rel = f"uploads-{tmp_path.name}/evil.pt"
    evil = crafted_weights(stack.settings.data_root / rel, marker)
    assert_payload_is_live(evil, marker)

    init = {"preset": "tiny", "init": {"path": rel}}
    track_data = {"train": "synthetic", "frames_per_clip": 2, "batch_size_per_gpu": 1,
                  "image_size": 112}
    eval_data = {"dataset": "synthetic-val", "frames_per_clip": 2, "image_size": 112}
    bodies = {  # every weights field (model.init.path) of every job kind and task
        "train/detect": {"kind": "train", "config": tiny_train(model=init, max_steps=2)},
        "train/track": {"kind": "train", "config": tiny_train(
            task="track", model=init, data=track_data, track={"max_objects": 2}, max_steps=2)},
        "eval/detect": {"kind": "eval", "config": {"task": "detect", "model": init,
                                                   "data": eval_data, "gpus": 0}},
        "eval/track": {"kind": "eval", "config": {"task": "track", "model": init,
                                                  "data": eval_data, "gpus": 0}},
    }
    stack.start_worker("w1")
    stack.start_api()
    with stack.http() as client:
        submitted = {}
        for what, body in bodies.items():
            r = client.post("/jobs", json=body)
            if r.status_code == 422:  # refused at the door: fine too, if it says why
                assert any("model.init.path" in e for e in r.json()["errors"]), (what, r.text)
                continue
            assert r.status_code == 201, (what, r.text)
            submitted[what] = r.json()["id"]
        for what, job_id in submitted.items():
            job = poll_final(client, job_id, 240)
            assert job["state"] == "failed", (what, job)
            assert job["failure"]["kind"] == "config", (what, job)
            message = job["failure"]["message"]
            assert "model.init.path" in message and "not a plain tensor checkpoint" in message, \
                (what, message)
            # No attempt ever ran the model. (An earlier attempt may have been requeued by
            # infrastructure, e.g. a lease lost on a loaded host; "config errors are not
            # retried" is test_faults.py's test_config_error_fails_once_without_retry.)
            outcomes = [a["outcome"] for a in job["attempts"]]
            assert outcomes[-1] == "failed" and "succeeded" not in outcomes, (what, job["attempts"])
    assert not marker.exists(), "a weights file ran code inside the trainer"


def test_row1_child_env_is_an_allowlist(tmp_path):
    worker_env = {"PATH": "/usr/bin", "HOME": "/home/w", "OMP_NUM_THREADS": "1",
                  "PYTHONPATH": "/src", "NCCL_DEBUG": "INFO", "TORCH_HOME": "/cache/torch",
                  "SAM3V_DATABASE_URL": "postgresql://svc:pw@db/sam3v",
                  "SAM3V_BROKER_URL": "redis://:pw@redis:6379/0", "DATABASE_URL": "sqlite:///x",
                  "PGPASSWORD": SECRET, "AWS_SECRET_ACCESS_KEY": SECRET, "HF_TOKEN": SECRET,
                  "SAM3V_WORKER_ID": "w1", "LD_PRELOAD": "/tmp/evil.so", "DATA_ROOT": "/elsewhere"}
    env = child_env(tmp_path / "data", tmp_path / "runs", [0, 1], environ=worker_env)
    assert env == {"PATH": "/usr/bin", "HOME": "/home/w", "OMP_NUM_THREADS": "1",
                   "PYTHONPATH": "/src", "NCCL_DEBUG": "INFO", "TORCH_HOME": "/cache/torch",
                   "DATA_ROOT": str(tmp_path / "data"), "RUNS_ROOT": str(tmp_path / "runs"),
                   "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": "0,1"}
    assert child_env(tmp_path, tmp_path, [], environ={})["CUDA_VISIBLE_DEVICES"] == ""


def test_row1_trainer_environment_holds_no_secrets(stack):
    extra = {"PGPASSWORD": SECRET, "REDIS_PASSWORD": SECRET, "AWS_SECRET_ACCESS_KEY": SECRET,
             "HF_TOKEN": SECRET, "CELERY_BROKER_URL": stack.redis.url}
    stack.start_worker("w1", **extra)
    job_id = stack.submit(tiny_train(max_steps=30, checkpoint_every=100))
    wait_until(lambda: stack.job(job_id).step >= 1, 180, "the trainer to train a step")
    environs = {}
    for proc in stack.trainer_processes(job_id):  # torchrun and its rank
        try:
            environs[proc.pid] = proc.environ()  # /proc/<pid>/environ
        except psutil.NoSuchProcess:
            pass
    assert len(environs) >= 2, "expected torchrun and at least one rank"
    forbidden_values = (stack.db_url, stack.redis.url, SECRET)
    for pid, env in environs.items():
        leaked = sorted(k for k in env if any(m in k for m in ("URL", "PASSWORD", "SECRET", "TOKEN")))
        assert not leaked, f"trainer {pid} got {leaked}"
        assert not [k for k, v in env.items() if any(f in v for f in forbidden_values)], env
        assert not [k for k in env if k.startswith("SAM3V_")], env
        assert env["DATA_ROOT"] == str(stack.settings.data_root)
        assert env["RUNS_ROOT"] == str(stack.runs_root)
        assert env["CUDA_VISIBLE_DEVICES"] == ""
        assert env["OMP_NUM_THREADS"] == "1"
    job = stack.wait_state(job_id, FINAL, 240)
    assert job.state == "succeeded", job.reason  # the allowlist is enough to train
