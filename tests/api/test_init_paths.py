"""Row 2: a user reaches another job's files only through model.init.job_id (which checks
the caller may see that job), never by writing a path: POST /jobs refuses every
model.init.path that lands under RUNS_ROOT, with 422 naming config.model.init.path.
Real app, real SQLite, real Redis (tests/api/conftest.py)."""
from __future__ import annotations

import os

from fastapi.testclient import TestClient

from api.main import create_app
from jobstore.settings import Settings
from jobstore.tokens import create_token
from sam3_video.run_layout import job_dir
from tests.api.conftest import train_body, write_dataset

CHECKPOINT = "step_0000005.pt"


def eval_body(init: dict) -> dict:
    return {"kind": "eval", "config": {"data": {"dataset": "synthetic-val"}, "gpus": 0,
                                       "model": {"init": init}}}


def with_checkpoint(runs_root, job_id: int):
    ckpts = job_dir(runs_root, job_id) / "checkpoints"
    ckpts.mkdir(parents=True, exist_ok=True)
    (ckpts / CHECKPOINT).write_bytes(b"alice's weights")
    return ckpts / CHECKPOINT


def assert_refused_naming_init_path(r) -> None:
    assert r.status_code == 422, r.text
    assert any(e.startswith("config.model.init.path:") for e in r.json()["errors"]), r.text
    assert "alice's weights" not in r.text


def test_row2_relative_dotdot_path_into_runs_root_is_refused(client, auth, make_job, settings):
    src = make_job(user="alice")
    with_checkpoint(settings.runs_root, src["id"])
    rel = os.path.relpath(job_dir(settings.runs_root, src["id"]) / "checkpoints" / CHECKPOINT,
                          settings.data_root)
    assert rel.startswith("../")
    assert_refused_naming_init_path(client.post("/jobs", json=eval_body({"path": rel}),
                                                headers=auth["bob"]))


def test_row2_absolute_path_under_runs_root_is_refused(client, auth, make_job, settings):
    src = make_job(user="alice")
    ckpt = with_checkpoint(settings.runs_root, src["id"])
    for user in ("bob", "alice"):  # even the owner names her own run through job_id
        assert_refused_naming_init_path(client.post("/jobs", json=eval_body({"path": str(ckpt)}),
                                                    headers=auth[user]))


def test_row2_symlink_under_data_root_into_runs_root_is_refused(client, auth, make_job, settings):
    src = make_job(user="alice")
    ckpt = with_checkpoint(settings.runs_root, src["id"])
    (settings.data_root / "innocent.pt").symlink_to(ckpt)
    (settings.data_root / "runs-link").symlink_to(settings.runs_root, target_is_directory=True)
    for path in ("innocent.pt", f"runs-link/job-{src['id']}/checkpoints/{CHECKPOINT}"):
        assert_refused_naming_init_path(client.post("/jobs", json=eval_body({"path": path}),
                                                    headers=auth["bob"]))


def test_row2_runs_root_nested_inside_data_root_is_refused(tmp_path, redis_url):
    data = tmp_path / "nested" / "data"
    write_dataset(data, "synthetic")
    write_dataset(data, "synthetic-val")
    settings = Settings(home=tmp_path / "nested", database_url=f"sqlite:///{tmp_path / 'nested.db'}",
                        data_root=data, runs_root=data / "runs", broker_url=redis_url,
                        gpu_counts=[0])
    with TestClient(create_app(settings)) as client:
        auth = {u: {"Authorization": f"Bearer {create_token(settings, u)}"} for u in ("alice", "bob")}
        r = client.post("/jobs", json=train_body(), headers=auth["alice"])
        assert r.status_code == 201, r.text
        src = r.json()["id"]
        ckpt = with_checkpoint(settings.runs_root, src)
        for path in (f"runs/job-{src}/checkpoints/{CHECKPOINT}", str(ckpt),
                     f"runs/../runs/job-{src}/checkpoints/{CHECKPOINT}"):
            assert_refused_naming_init_path(client.post("/jobs", json=eval_body({"path": path}),
                                                        headers=auth["bob"]))
        # A dataset path is a user path too: no reading a run directory as a dataset.
        body = eval_body({"job_id": src})
        body["config"]["data"]["dataset"] = f"runs/job-{src}"
        r = client.post("/jobs", json=body, headers=auth["alice"])
        assert r.status_code == 422 and any(e.startswith("config.data.dataset:") and "RUNS_ROOT" in e
                                            for e in r.json()["errors"]), r.text
        # The owner's job_id still works; another user's job_id is "not found".
        r = client.post("/jobs", json=eval_body({"job_id": src}), headers=auth["alice"])
        assert r.status_code == 201, r.text
        r = client.post("/jobs", json=eval_body({"job_id": src}), headers=auth["bob"])
        assert r.status_code == 422 and f"job {src} not found" in r.text


def test_row2_own_job_id_still_works(client, auth, make_job, settings):
    src = make_job(user="alice")
    with_checkpoint(settings.runs_root, src["id"])
    r = client.post("/jobs", json=eval_body({"job_id": src["id"]}), headers=auth["alice"])
    assert r.status_code == 201, r.text
    assert r.json()["config"]["model"]["init"]["job_id"] == src["id"]
    r = client.post("/jobs", json=eval_body({"job_id": src["id"]}), headers=auth["bob"])
    assert r.status_code == 422 and f"job {src['id']} not found" in r.text


def test_row2_worker_resolves_job_json_with_the_same_exclusion(tmp_path):
    """The worker resolves the stored spec again when it writes job.json: a user path
    under a RUNS_ROOT nested in DATA_ROOT fails the job as a config error there too."""
    from sam3_video.config import ConfigError
    from worker.tasks import resolved_config

    data = tmp_path / "data"
    settings = Settings(home=tmp_path, data_root=data, runs_root=data / "runs")
    (data / "synthetic-val").mkdir(parents=True)
    ckpt = with_checkpoint(settings.runs_root, 3)
    stored = {"data": {"dataset": "synthetic-val"}, "gpus": 0}
    for path in ("runs/job-3/checkpoints/" + CHECKPOINT, str(ckpt)):
        try:
            resolved_config("eval", {**stored, "model": {"init": {"path": path}}}, settings)
        except ConfigError as err:
            assert err.problems[0].startswith("model.init.path:") and "RUNS_ROOT" in str(err)
        else:
            raise AssertionError(f"{path} was accepted")
    by_job = resolved_config("eval", {**stored, "model": {"init": {"job_id": 3}}}, settings)
    assert by_job.model.init.path == str(ckpt.resolve())
