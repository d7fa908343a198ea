"""Migrations with data in the tables: 0002 drops jobs.run_dir (a table copy on SQLite)
and keeps every row, the ones referencing jobs included."""
from __future__ import annotations

import json

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

import jobstore
from jobstore.migrate import downgrade, head_revision

CHILD_TABLES = ("attempts", "metrics", "metric_latest", "checkpoints", "idempotency_keys",
                "job_events")


def _fill_at_0001(engine) -> None:
    """One user, two jobs as the 0001 API stored them, and a row in every child table."""
    with engine.begin() as c:
        c.execute(text("INSERT INTO users (id, name, is_admin, created_at) VALUES (1, 'u', 0, 0)"))
        configs = {1: {"max_steps": 10, "data": {"train": "synthetic"}},
                   2: {"data": {"dataset": "synthetic-val"},
                       "model": {"init": {"job_id": 1, "checkpoint": "latest",
                                          "path": "/api-host/runs/job-1/checkpoints/step_0000010.pt"}}}}
        for job_id, config in configs.items():
            c.execute(text(
                "INSERT INTO jobs (id, owner_id, kind, state, priority, gpus, queue, config, run_dir,"
                " attempt, max_attempts, step, created_at, updated_at, enqueued_at)"
                " VALUES (:id, 1, 'train', 'running', 0, 0, 'cpu', :config, :run_dir, 1, 3, 0, 0, 0, 0)"),
                {"id": job_id, "config": json.dumps(config), "run_dir": f"/api-host/runs/job-{job_id}"})
            c.execute(text("INSERT INTO attempts (job_id, number, started_at) VALUES (:j, 1, 0)"), {"j": job_id})
            c.execute(text("INSERT INTO metrics (job_id, name, step, value, time, attempt)"
                           " VALUES (:j, 'loss', 1, 0.5, 0, 1)"), {"j": job_id})
            c.execute(text("INSERT INTO metric_latest (job_id, name, step, value, time, attempt)"
                           " VALUES (:j, 'loss', 1, 0.5, 0, 1)"), {"j": job_id})
            c.execute(text("INSERT INTO checkpoints (job_id, name, step, size_bytes, sha256, path, created_at)"
                           " VALUES (:j, 'step_0000001.pt', 1, 5, :sha, '/x', 0)"), {"j": job_id, "sha": "a" * 64})
            c.execute(text("INSERT INTO idempotency_keys (user_id, key, body_sha256, job_id, created_at)"
                           " VALUES (1, :k, :sha, :j, 0)"), {"k": f"key-{job_id}", "sha": "b" * 64, "j": job_id})
            c.execute(text("INSERT INTO job_events (job_id, kind, data, created_at)"
                           " VALUES (:j, 'state', '{}', 0)"), {"j": job_id})


def _counts(engine) -> dict[str, int]:
    with engine.connect() as c:
        return {t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in ("jobs", *CHILD_TABLES)}


def test_0002_drops_run_dir_and_keeps_every_row(tmp_path):
    engine = jobstore.create_db_engine(f"sqlite:///{tmp_path / 'old.db'}")
    jobstore.migrate(engine=engine, revision="0001")
    _fill_at_0001(engine)
    before = _counts(engine)
    assert before == {"jobs": 2, **{t: 2 for t in CHILD_TABLES}}

    jobstore.migrate(engine=engine)
    assert _counts(engine) == before  # the table copy cascaded nothing away
    assert "run_dir" not in {c["name"] for c in inspect(engine).get_columns("jobs")}
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), jobstore.Base.metadata) == []
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
    # The stored config is what the user sent: job_id stays, the API-host path goes.
    assert jobstore.get_job(2, engine=engine).config["model"]["init"] == {"job_id": 1, "checkpoint": "latest"}
    assert jobstore.get_job(1, engine=engine).config == {"max_steps": 10, "data": {"train": "synthetic"}}
    # Foreign keys still hold after the migration: deleting a job cascades to its rows.
    assert jobstore.delete_job(1, engine=engine) is None  # running: not deleted
    jobstore.finish_job(1, 1, "failed", "infrastructure", "x", engine=engine)
    assert jobstore.delete_job(1, engine=engine) is not None
    assert _counts(engine) == {"jobs": 1, **{t: 1 for t in CHILD_TABLES}}


def test_0002_downgrade_brings_run_dir_back_and_keeps_every_row(tmp_path):
    engine = jobstore.create_db_engine(f"sqlite:///{tmp_path / 'down.db'}")
    jobstore.migrate(engine=engine, revision="0001")
    _fill_at_0001(engine)
    jobstore.migrate(engine=engine)
    before = _counts(engine)
    downgrade("0001", engine=engine)
    assert _counts(engine) == before
    assert "run_dir" in {c["name"] for c in inspect(engine).get_columns("jobs")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
