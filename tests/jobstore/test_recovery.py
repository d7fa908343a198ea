"""The one recovery rule (jobstore.recovery), on a real SQLite file and a real Redis:
another attempt while attempts remain, else failed; a cancel is confirmed; a lost
broker message leaves the job queued for the reaper."""
from __future__ import annotations

import math
import time

import pytest
import redis
from sqlalchemy import select

import jobstore
from jobstore import recovery
from jobstore.broker import queue_keys
from jobstore.settings import Settings
from tests.api.conftest import free_port


@pytest.fixture
def rig(tmp_path, redis_url):
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'store.db'}",
                        broker_url=redis_url)
    jobstore.migrate(settings)
    engine = jobstore.get_engine(settings)
    with jobstore.session_scope(engine) as s:
        user = jobstore.User(name="u", is_admin=False, created_at=time.time())
        s.add(user)
        s.flush()
        user_id = user.id
    broker = redis.Redis.from_url(redis_url)
    broker.delete(*queue_keys("cpu"))

    def running_job(max_attempts: int = 3, attempts: int = 1, lease_s: float = 60) -> jobstore.Job:
        """A job claimed `attempts` times (the earlier attempts requeued)."""
        with jobstore.session_scope(engine) as s:
            job = jobstore.create_job(s, owner_id=user_id, kind="train", name=None,
                                      config={"max_steps": 10}, gpus=0, queue="cpu", priority=0,
                                      max_attempts=max_attempts)
        for number in range(1, attempts + 1):
            claimed = jobstore.claim_job(job.id, "w", lease_s, engine=engine)
            if number < attempts:
                jobstore.requeue_job(job.id, number, "earlier", engine=engine)
        return claimed

    return settings, engine, broker, running_job


def messages(broker, queue: str) -> list[bytes]:
    """Every message waiting in `queue` (one Redis list per priority, jobstore.broker)."""
    return [m for key in queue_keys(queue) for m in broker.lrange(key, 0, -1)]


def _attempt(engine, job_id: int, number: int) -> jobstore.Attempt:
    with jobstore.session_scope(engine, write=False) as s:
        return s.scalars(select(jobstore.Attempt).where(jobstore.Attempt.job_id == job_id,
                                                        jobstore.Attempt.number == number)).one()


def test_attempts_left_requeue_and_send_the_message(rig):
    settings, engine, broker, running_job = rig
    job = running_job()
    assert recovery.retry_or_fail(job, "trainer crashed", settings) == "requeued"
    after = jobstore.get_job(job.id, engine=engine)
    assert after.state == "queued" and after.attempt == 1 and after.worker_id is None
    assert _attempt(engine, job.id, 1).outcome == "requeued"
    assert _attempt(engine, job.id, 1).reason == "trainer crashed"
    [message] = messages(broker, "cpu")
    assert "sam3v.run_job" in message.decode()
    # The next claim is the next attempt.
    assert jobstore.claim_job(job.id, "w2", 60, engine=engine).attempt == 2


def test_last_attempt_fails_naming_it(rig):
    settings, engine, broker, running_job = rig
    job = running_job(max_attempts=2, attempts=2)
    assert recovery.retry_or_fail(job, "node died", settings) == "failed:infrastructure"
    after = jobstore.get_job(job.id, engine=engine)
    assert after.state == "failed" and after.reason_kind == "infrastructure"
    assert after.reason == "attempt 2 of 2 failed: node died"
    assert messages(broker, "cpu") == []


def test_a_cancel_is_confirmed_not_retried(rig):
    settings, engine, broker, running_job = rig
    job = running_job()
    jobstore.cancel_job(job.id, engine=engine)  # arrives while the attempt is failing
    assert recovery.retry_or_fail(job, "trainer crashed", settings) == "cancelled"
    after = jobstore.get_job(job.id, engine=engine)
    assert after.state == "cancelled" and after.reason == recovery.CANCELLED_ON_REQUEST
    assert messages(broker, "cpu") == []

    cancelling = running_job()
    jobstore.cancel_job(cancelling.id, engine=engine)
    snapshot = jobstore.get_job(cancelling.id, engine=engine)
    assert recovery.retry_or_fail(snapshot, "lease expired", settings) == "cancelled"
    assert jobstore.get_job(cancelling.id, engine=engine).reason == "lease expired"


def test_a_finished_job_is_left_alone(rig):
    settings, engine, broker, running_job = rig
    job = running_job()
    jobstore.finish_job(job.id, 1, "succeeded", None, None, engine=engine)
    assert recovery.retry_or_fail(job, "late", settings) == "left:succeeded"
    assert recovery.requeue(job, "late", settings) == "left:succeeded"


def test_expired_leases_get_the_rule_and_inf_takes_every_lease(rig):
    settings, engine, broker, running_job = rig
    expired = running_job(lease_s=0.01)
    live = running_job(lease_s=600)
    last = running_job(max_attempts=1, lease_s=600)
    time.sleep(0.05)
    done = recovery.recover_expired_leases(settings, lambda job: f"lost {job.id}")
    assert [(job.id, outcome) for job, outcome in done] == [(expired.id, "requeued")]
    assert jobstore.get_job(live.id, engine=engine).state == "running"
    everything = recovery.recover_expired_leases(settings, lambda job: "restarted", now=math.inf)
    assert [(job.id, outcome) for job, outcome in everything] == [
        (live.id, "requeued"), (last.id, "failed:infrastructure")]
    assert jobstore.get_job(last.id, engine=engine).reason == "attempt 1 of 1 failed: restarted"


def test_unreachable_broker_leaves_the_job_queued_for_the_reaper(rig):
    settings, engine, broker, running_job = rig
    job = running_job()
    dead = settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{free_port()}/0"})
    assert recovery.retry_or_fail(job, "crashed", dead, engine=engine) == "requeued"
    assert jobstore.get_job(job.id, engine=engine).state == "queued"
    time.sleep(0.05)
    # Not marked enqueued: the reaper's stale_queued finds it and sends it again.
    assert job.id in [j.id for j in jobstore.stale_queued(0.01, engine=engine)]
