"""Row 8 in the job store: a job id is never handed out twice, on SQLite too (migration
0004 gives the jobs table AUTOINCREMENT); PostgreSQL's id sequence never reuses one."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

import jobstore
from jobstore.migrate import downgrade


def _fill_at_0003(engine, ids=(1, 2, 3)) -> None:
    with engine.begin() as c:
        c.execute(text("INSERT INTO users (id, name, is_admin, created_at) VALUES (1, 'u', 0, 0)"))
        for job_id in ids:
            c.execute(text(
                "INSERT INTO jobs (id, owner_id, kind, state, priority, gpus, queue, config,"
                " attempt, max_attempts, step, created_at, updated_at, enqueued_at)"
                " VALUES (:id, 1, 'train', 'failed', 0, 0, 'cpu', '{}', 1, 3, 0, 0, 0, 0)"),
                {"id": job_id})
            c.execute(text("INSERT INTO attempts (job_id, number, started_at) VALUES (:j, 1, 0)"),
                      {"j": job_id})
            c.execute(text("INSERT INTO job_events (job_id, kind, data, created_at)"
                           " VALUES (:j, 'state', '{}', 0)"), {"j": job_id})


def _counts(engine) -> dict[str, int]:
    with engine.connect() as c:
        return {t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                for t in ("jobs", "attempts", "job_events")}


def _jobs_ddl(engine) -> str:
    with engine.connect() as c:
        return c.execute(text("SELECT sql FROM sqlite_master WHERE name = 'jobs'")).scalar()


def _new_job_id(engine) -> int:
    with jobstore.session_scope(engine) as s:
        return jobstore.create_job(s, owner_id=1, kind="train", name=None, config={}, gpus=0,
                                   queue="cpu", priority=0, max_attempts=3).id


def test_row8_migration_0004_job_ids_never_reused_on_sqlite(tmp_path):
    engine = jobstore.create_db_engine(f"sqlite:///{tmp_path / 'ids.db'}")
    jobstore.migrate(engine=engine, revision="0003")
    _fill_at_0003(engine)
    assert "AUTOINCREMENT" not in _jobs_ddl(engine)
    before = _counts(engine)

    jobstore.migrate(engine=engine)
    assert "AUTOINCREMENT" in _jobs_ddl(engine)
    assert _counts(engine) == before  # the table copy kept every row and its children
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), jobstore.Base.metadata) == []
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
        indexes = {r[0] for r in conn.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs'"))}
        assert {"ix_jobs_owner_id", "ix_jobs_name", "ix_jobs_state"} <= indexes
    # The newest job is deleted: its id is not handed out again.
    assert jobstore.delete_job(3, engine=engine) is not None
    assert _new_job_id(engine) == 4
    assert jobstore.delete_job(4, engine=engine) is None  # queued: not deleted
    jobstore.cancel_job(4, engine=engine)
    assert jobstore.delete_job(4, engine=engine) is not None
    assert _new_job_id(engine) == 5

    downgrade("0003", engine=engine)
    assert "AUTOINCREMENT" not in _jobs_ddl(engine)
    assert _counts(engine)["jobs"] == 3
    engine.dispose()


def test_row8_fresh_sqlite_database_never_reuses_job_ids(tmp_path):
    engine = jobstore.create_db_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    jobstore.migrate(engine=engine)
    with engine.begin() as c:
        c.execute(text("INSERT INTO users (id, name, is_admin, created_at) VALUES (1, 'u', 0, 0)"))
    first, second = _new_job_id(engine), _new_job_id(engine)
    jobstore.cancel_job(second, engine=engine)
    jobstore.delete_job(second, engine=engine)
    assert _new_job_id(engine) == second + 1 and second == first + 1
    engine.dispose()
