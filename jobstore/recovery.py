"""The one recovery rule: what happens to a job whose attempt ended without an answer.

An attempt ends that way when its worker stops renewing the lease (killed, hung, host
gone: worker/reaper.py), when the trainer crashes or the worker itself fails
(worker/tasks.py), or when the local stack died under it (deploy/launcher.py). Then:

- a job being cancelled is confirmed cancelled;
- while attempts remain (attempt < max_attempts) it goes back to the queue and its
  message is sent; the next claim makes it attempt+1, which resumes from the latest
  checkpoint;
- otherwise it fails, reason kind "infrastructure", the reason naming the attempt.

Every step is one conditional transition, so when several processes apply the rule to
the same job at once exactly one of them wins.
"""
from __future__ import annotations

from sqlalchemy import Engine

from jobstore.broker import enqueue
from jobstore.db import get_engine
from jobstore.jobs import expired_leases, finish_job, get_job, requeue_job
from jobstore.models import Job
from jobstore.settings import Settings

CANCELLED_ON_REQUEST = "cancelled on request"


def retry_or_fail(job: Job, reason: str, settings: Settings, *,
                  engine: Engine | None = None) -> str:
    """Apply the rule to `job` (a snapshot of its failed attempt). Returns what happened:
    "cancelled", "requeued", "failed:infrastructure", or "left:<state>" when another
    process moved the job first."""
    engine = engine if engine is not None else get_engine(settings)
    if job.state == "cancelling":
        if finish_job(job.id, job.attempt, "cancelled", "cancelled", reason, engine=engine):
            return "cancelled"
        return settle_cancel(job, engine=engine)
    if job.attempt < job.max_attempts:
        return requeue(job, reason, settings, engine=engine)
    reason = f"attempt {job.attempt} of {job.max_attempts} failed: {reason}"
    if finish_job(job.id, job.attempt, "failed", "infrastructure", reason, engine=engine):
        return "failed:infrastructure"
    return settle_cancel(job, engine=engine)


def requeue(job: Job, reason: str, settings: Settings, *, engine: Engine | None = None) -> str:
    """running -> queued for another attempt, and send its message (a failed send is left
    to the reaper). Also used on its own when a worker shuts down: that is no failure, so
    it does not count against max_attempts."""
    engine = engine if engine is not None else get_engine(settings)
    if requeue_job(job.id, job.attempt, reason, engine=engine):
        enqueue(settings, job.id, job.gpus, priority=job.priority, engine=engine, nodes=job.nodes)
        return "requeued"
    return settle_cancel(job, engine=engine)


def settle_cancel(job: Job, *, engine: Engine | None = None) -> str:
    """A transition was refused: if a cancel arrived meanwhile, confirm it."""
    current = get_job(job.id, engine=engine)
    if current is not None and current.state == "cancelling" and current.attempt == job.attempt:
        finish_job(job.id, job.attempt, "cancelled", "cancelled", CANCELLED_ON_REQUEST, engine=engine)
        return "cancelled"
    return f"left:{current.state if current else 'missing'}"


def recover_expired_leases(settings: Settings, reason_of, *, now: float | None = None,
                           engine: Engine | None = None) -> list[tuple[Job, str]]:
    """The rule for every running or cancelling job whose lease ran out before `now`
    (default: the current time; math.inf: every lease, when no worker can be alive).
    `reason_of(job)` says why the attempt ended. Returns (job, outcome) per job."""
    engine = engine if engine is not None else get_engine(settings)
    return [(job, retry_or_fail(job, reason_of(job), settings, engine=engine))
            for job in expired_leases(now, engine=engine)]
