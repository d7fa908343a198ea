"""The job store on its own: schema = migrations, one-winner transitions, idempotent
ingestion, SQLite pragmas."""
from __future__ import annotations

import threading
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

import jobstore
from jobstore.migrate import head_revision
from jobstore.settings import Settings


@pytest.fixture
def db(tmp_path):
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'store.db'}")
    jobstore.migrate(settings)
    engine = jobstore.get_engine(settings)
    with jobstore.session_scope(engine) as s:
        user = jobstore.User(name="u", is_admin=False, created_at=time.time())
        s.add(user)
        s.flush()
        user_id = user.id

    def new_job(**kw):
        with jobstore.session_scope(engine) as s:
            return jobstore.create_job(s, owner_id=user_id, kind="train", name=None,
                                    config={"max_steps": 10}, gpus=0, queue="cpu", priority=0,
                                    max_attempts=kw.get("max_attempts", 3))
    return engine, new_job


def _events(engine, job_id):
    with jobstore.session_scope(engine, write=False) as s:
        return [(e.kind, e.data.get("state")) for e in
                s.scalars(select(jobstore.JobEvent).where(jobstore.JobEvent.job_id == job_id).order_by(jobstore.JobEvent.id))]


def test_migrations_match_models_and_rerun_is_noop(tmp_path, db):
    engine, _ = db
    jobstore.migrate(engine=engine)  # second run: nothing to do, no error
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), jobstore.Base.metadata) == []
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(db):
    engine, _ = db
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_only_one_of_many_concurrent_claims_wins(db):
    engine, new_job = db
    job = new_job()
    winners = []
    barrier = threading.Barrier(6)

    def claim(i):
        barrier.wait()
        got = jobstore.claim_job(job.id, f"w{i}", 30, engine=engine)
        if got is not None:
            winners.append(got)
    threads = [threading.Thread(target=claim, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and winners[0].attempt == 1 and winners[0].state == "running"
    assert jobstore.get_job(job.id, engine=engine).worker_id == winners[0].worker_id


def test_lease_requeue_and_finish_follow_the_current_attempt(db):
    engine, new_job = db
    job = new_job()
    first = jobstore.claim_job(job.id, "w1", 0.01, engine=engine)
    time.sleep(0.02)
    assert [j.id for j in jobstore.expired_leases(engine=engine)] == [job.id]
    assert jobstore.requeue_job(job.id, 1, "lease expired", engine=engine)
    assert not jobstore.requeue_job(job.id, 1, "twice", engine=engine)
    second = jobstore.claim_job(job.id, "w2", 60, engine=engine)
    assert second.attempt == 2 and second.started_at == first.started_at
    # The old attempt's worker has lost the job: its renewals and finish are refused.
    assert jobstore.renew_lease(job.id, 1, 60, engine=engine) is None
    assert not jobstore.finish_job(job.id, 1, "succeeded", None, None, engine=engine)
    assert jobstore.renew_lease(job.id, 2, 60, engine=engine) == "running"
    assert jobstore.expired_leases(engine=engine) == []
    assert jobstore.finish_job(job.id, 2, "succeeded", None, None, engine=engine)
    assert not jobstore.finish_job(job.id, 2, "failed", "infrastructure", "late", engine=engine)
    assert jobstore.get_job(job.id, engine=engine).state == "succeeded"
    assert _events(engine, job.id) == [("state", "queued"), ("state", "running"), ("state", "queued"),
                                       ("state", "running"), ("state", "succeeded")]
    with pytest.raises(ValueError, match="state"):
        jobstore.finish_job(job.id, 2, "exploded", None, None, engine=engine)


def test_metrics_upsert_and_checkpoints_are_idempotent(db):
    engine, new_job = db
    job = new_job()
    jobstore.claim_job(job.id, "w", 60, engine=engine)
    jobstore.add_metrics(job.id, 1, [("loss", 1, 2.0, 1.0), ("loss", 2, 1.5, 2.0)], engine=engine)
    jobstore.add_metrics(job.id, 2, [("loss", 2, 1.4, 3.0), ("loss", 2, 1.3, 3.5)], engine=engine)  # re-trained
    with jobstore.session_scope(engine, write=False) as s:
        rows = [(m.step, m.value, m.attempt) for m in s.scalars(select(jobstore.Metric).order_by(jobstore.Metric.step))]
    assert rows == [(1, 2.0, 1), (2, 1.3, 2)]
    # metric_latest: the highest step wins, and a newer attempt (resumed earlier) wins too.
    jobstore.add_metrics(job.id, 2, [("acc", 5, 0.5, 1.0), ("acc", 4, 0.4, 1.0)], engine=engine)
    jobstore.add_metrics(job.id, 2, [("acc", 3, 0.3, 2.0)], engine=engine)
    jobstore.add_metrics(job.id, 3, [("acc", 2, 0.7, 3.0)], engine=engine)
    with jobstore.session_scope(engine, write=False) as s:
        latest = {(m.name, m.step, m.value, m.attempt) for m in s.scalars(select(jobstore.MetricLatest))}
    assert latest == {("loss", 2, 1.3, 2), ("acc", 2, 0.7, 3)}
    assert jobstore.add_checkpoint(job.id, "step_0000002.pt", 2, 5, "a" * 64, "/x", engine=engine)
    assert not jobstore.add_checkpoint(job.id, "step_0000002.pt", 2, 5, "a" * 64, "/x", engine=engine)
    assert [k for k, _ in _events(engine, job.id)].count("checkpoint") == 1


def test_stale_queued_and_mark_enqueued(db):
    engine, new_job = db
    job = new_job()
    # Seconds, not milliseconds: on a busy host the next query can start 10 ms later.
    time.sleep(1.0)
    assert [j.id for j in jobstore.stale_queued(0.5, engine=engine)] == [job.id]
    assert jobstore.mark_enqueued(job.id, engine=engine)
    assert jobstore.stale_queued(0.5, engine=engine) == []
    jobstore.claim_job(job.id, "w", 60, engine=engine)
    assert not jobstore.mark_enqueued(job.id, engine=engine)  # only queued jobs


def test_default_engine_comes_from_environment(tmp_path, monkeypatch):
    """The worker calls store functions without engine=: SAM3V_DATABASE_URL decides."""
    from jobstore.settings import get_settings
    monkeypatch.setenv("SAM3V_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    get_settings.cache_clear()
    try:
        jobstore.migrate()
        assert jobstore.get_job(1) is None
        assert (tmp_path / "env.db").exists()
    finally:
        get_settings.cache_clear()


def test_concurrent_migrators_all_succeed(tmp_path):
    """API, worker and launcher all migrate on start, possibly at the same moment."""
    import subprocess
    import sys
    url = f"sqlite:///{tmp_path / 'race.db'}"
    code = ("import sys; from jobstore.settings import Settings; import jobstore; "
            "jobstore.migrate(Settings(database_url=sys.argv[1]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    engine = jobstore.create_db_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
