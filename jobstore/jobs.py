"""Job state transitions. Each is ONE conditional UPDATE plus a job_events row, in one
transaction: two processes racing on the same job cannot both win, and the event log
(which SSE replays) always matches the state.

Every function takes an optional `engine=`; without it, the process-wide engine of
`jobstore.settings.get_settings()` is used.

Leases (lease_until) are set and compared on the database's clock (jobstore.db.db_now,
inside the UPDATE and the WHERE), never on the calling host's: a worker whose clock lags
does not hand out leases that look expired, and a reaper whose clock runs ahead does not
take a healthy job away.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterable

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session

from jobstore import webhooks
from jobstore.db import db_now, get_engine, session_scope
from jobstore.models import (ACTIVE_STATES, FINISHED_STATES, REASON_KINDS, Attempt,
                             Checkpoint, Job, JobEvent, Metric, MetricLatest, User)


def _engine(engine: Engine | None) -> Engine:
    return engine if engine is not None else get_engine()


def _transition(session: Session, job_id: int, conditions: list, values: dict) -> Job | None:
    """UPDATE jobs SET ... WHERE id=? AND <conditions> RETURNING *; None if no row matched."""
    stmt = (update(Job).where(Job.id == job_id, *conditions)
            .values(updated_at=time.time(), **values).returning(Job))
    return session.scalars(stmt, execution_options={"synchronize_session": False}).first()


def add_event(session: Session, job_id: int, kind: str, data: dict) -> None:
    session.add(JobEvent(job_id=job_id, kind=kind, data=data, created_at=time.time()))


def _state_event(session: Session, job: Job, reason: str | None = None) -> None:
    """The state event of every transition (`reason`: why, when the job row keeps none,
    as for a requeue), with its webhook delivery when the job has a webhook_url."""
    event = JobEvent(job_id=job.id, kind="state", created_at=time.time(), data={
        "state": job.state, "attempt": job.attempt, "reason_kind": job.reason_kind,
        "reason": reason if reason is not None else job.reason})
    session.add(event)
    if job.webhook_url:  # the outbox row commits with the state, or neither does
        session.flush()
        webhooks.queue_delivery(session, job, event)


def _insert(session: Session):
    """The dialect's INSERT (both SQLite and PostgreSQL have ON CONFLICT)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


# ---------------------------------------------------------------- API side

def create_job(session: Session, *, owner_id: int, kind: str, name: str | None, config: dict,
               gpus: int, queue: str, priority: int, max_attempts: int,
               time_limit_s: int | None = None, webhook_url: str | None = None) -> Job:
    """Insert a queued job inside the caller's transaction (so an idempotency key can
    be stored atomically with it)."""
    now = time.time()
    job = Job(owner_id=owner_id, kind=kind, name=name, state="queued", priority=priority,
              gpus=gpus, queue=queue, config=config, attempt=0, max_attempts=max_attempts,
              time_limit_s=time_limit_s, webhook_url=webhook_url, step=0,
              max_steps=config.get("max_steps"),
              created_at=now, updated_at=now, enqueued_at=now)
    session.add(job)
    session.flush()  # assigns job.id
    _state_event(session, job)
    return job


def active_jobs_of(session: Session, owner_id: int, *, lock: bool = False) -> int:
    """How many queued, running or cancelling jobs the user has (the per-user limit).
    lock=True takes the user's row first (SELECT ... FOR UPDATE on PostgreSQL; SQLite's
    write transaction already serialises), so two concurrent submits cannot both pass."""
    if lock:
        session.execute(select(User.id).where(User.id == owner_id).with_for_update())
    return session.scalar(select(func.count()).select_from(Job).where(
        Job.owner_id == owner_id, Job.state.in_(("queued", *ACTIVE_STATES))))


def mark_enqueued(job_id: int, *, engine: Engine | None = None) -> bool:
    """A broker message was just sent for this queued job (stale_queued measures from here)."""
    with session_scope(_engine(engine)) as s:
        return s.execute(update(Job).where(Job.id == job_id, Job.state == "queued")
                         .values(enqueued_at=time.time())).rowcount == 1


def cancel_job(job_id: int, *, engine: Engine | None = None) -> Job | None:
    """queued -> cancelled at once; running -> cancelling (the worker confirms).
    Anything else is left alone (idempotent). Returns the job as it now is."""
    with session_scope(_engine(engine)) as s:
        now = time.time()
        job = _transition(s, job_id, [Job.state == "queued"],
                          dict(state="cancelled", finished_at=now, reason_kind="cancelled",
                               reason="cancelled while queued"))
        if job is None:
            job = _transition(s, job_id, [Job.state == "running"], dict(state="cancelling"))
        if job is not None:
            _state_event(s, job)
            return job
        return s.get(Job, job_id)


def retry_job(job_id: int, extra_attempts: int, *, engine: Engine | None = None) -> Job | None:
    """failed|cancelled -> queued with `extra_attempts` more attempts. The run dir is kept,
    so the trainer resumes from its latest checkpoint. None if the job was not retryable."""
    with session_scope(_engine(engine)) as s:
        job = _transition(s, job_id, [Job.state.in_(("failed", "cancelled"))],
                          dict(state="queued", max_attempts=Job.attempt + extra_attempts,
                               finished_at=None, reason_kind=None, reason=None,
                               lease_until=None, worker_id=None, eta_seconds=None,
                               enqueued_at=time.time()))
        if job is not None:
            _state_event(s, job)
        return job


def delete_job(job_id: int, *, engine: Engine | None = None) -> Job | None:
    """Delete a finished job's rows (events, metrics... cascade). None if not finished."""
    with session_scope(_engine(engine)) as s:
        stmt = delete(Job).where(Job.id == job_id, Job.state.in_(FINISHED_STATES)).returning(Job)
        return s.scalars(stmt, execution_options={"synchronize_session": False}).first()


# ---------------------------------------------------------------- worker side

def claim_job(job_id: int, worker_id: str, lease_seconds: float, *,
              engine: Engine | None = None) -> Job | None:
    """queued -> running with attempt+1 and a lease. None if the job is not queued
    (a duplicate broker delivery, or it was cancelled meanwhile)."""
    now = time.time()
    with session_scope(_engine(engine)) as s:
        job = _transition(s, job_id, [Job.state == "queued"],
                          dict(state="running", attempt=Job.attempt + 1, worker_id=worker_id,
                               lease_until=db_now() + lease_seconds, eta_seconds=None,
                               started_at=func.coalesce(Job.started_at, now)))
        if job is None:
            return None
        s.add(Attempt(job_id=job_id, number=job.attempt, worker_id=worker_id, started_at=now))
        _state_event(s, job)
        return job


def renew_lease(job_id: int, attempt: int, lease_seconds: float, *,
                engine: Engine | None = None) -> str | None:
    """Extend the lease of the current attempt. Returns the job's state ('running' or
    'cancelling': stop the trainer), or None if this attempt no longer owns the job."""
    with session_scope(_engine(engine)) as s:
        stmt = (update(Job).where(Job.id == job_id, Job.attempt == attempt,
                                  Job.state.in_(ACTIVE_STATES))
                .values(lease_until=db_now() + lease_seconds).returning(Job.state))
        return s.execute(stmt).scalar_one_or_none()


def record_progress(job_id: int, step: int, max_steps: int | None, eta_seconds: float | None,
                    *, engine: Engine | None = None) -> None:
    with session_scope(_engine(engine)) as s:
        job = _transition(s, job_id, [Job.state.in_(ACTIVE_STATES)],
                          dict(step=step, max_steps=max_steps, eta_seconds=eta_seconds))
        if job is not None:
            add_event(s, job_id, "progress", {"step": step, "max_steps": max_steps,
                                              "eta_seconds": eta_seconds})


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def add_metrics(job_id: int, attempt: int, rows: Iterable[tuple[str, int, float, float]], *,
                engine: Engine | None = None) -> int:
    """Upsert (name, step, value, time) rows; a re-trained step overwrites its old value.
    NaN/inf are stored as NULL. Returns the number of rows written."""
    # Last row wins per (name, step): PostgreSQL refuses one INSERT touching a key twice.
    latest = {(str(n), int(st)): (v, t) for n, st, v, t in rows}
    values = [dict(job_id=job_id, name=n, step=st, value=_finite(v), time=float(t),
                   attempt=attempt) for (n, st), (v, t) in latest.items()]
    if not values:
        return 0
    with session_scope(_engine(engine)) as s:
        insert = _insert(s)
        stmt = insert(Metric)
        stmt = stmt.on_conflict_do_update(
            index_elements=[Metric.job_id, Metric.name, Metric.step],
            set_={"value": stmt.excluded.value, "time": stmt.excluded.time,
                  "attempt": stmt.excluded.attempt})
        s.execute(stmt, values)
        _update_latest(s, insert, values)
        add_event(s, job_id, "metrics", {"names": sorted({v["name"] for v in values}),
                                         "step": max(v["step"] for v in values),
                                         "count": len(values)})
    return len(values)


def _update_latest(s: Session, insert, values: list[dict]) -> None:
    """Keep metric_latest at each name's highest step; a newer attempt always wins
    (it re-trains steps after resuming from an earlier checkpoint)."""
    newest: dict[str, dict] = {}
    for v in values:
        if v["name"] not in newest or v["step"] >= newest[v["name"]]["step"]:
            newest[v["name"]] = v
    stmt = insert(MetricLatest)
    stmt = stmt.on_conflict_do_update(
        index_elements=[MetricLatest.job_id, MetricLatest.name],
        set_={"step": stmt.excluded.step, "value": stmt.excluded.value,
              "time": stmt.excluded.time, "attempt": stmt.excluded.attempt},
        where=(stmt.excluded.step >= MetricLatest.step) | (stmt.excluded.attempt > MetricLatest.attempt))
    s.execute(stmt, list(newest.values()))


def add_checkpoint(job_id: int, name: str, step: int, size_bytes: int, sha256: str, path: str,
                   *, engine: Engine | None = None) -> bool:
    """Register a checkpoint file; registering the same name again is a no-op (False)."""
    with session_scope(_engine(engine)) as s:
        insert = _insert(s)
        stmt = insert(Checkpoint).values(job_id=job_id, name=name, step=step,
                                         size_bytes=size_bytes, sha256=sha256, path=str(path),
                                         created_at=time.time())
        added = s.execute(stmt.on_conflict_do_nothing()).rowcount == 1
        if added:
            add_event(s, job_id, "checkpoint", {"name": name, "step": step,
                                                "size_bytes": size_bytes, "sha256": sha256})
        return added


def finish_job(job_id: int, attempt: int, state: str, reason_kind: str | None,
               reason: str | None, *, engine: Engine | None = None) -> bool:
    """running|cancelling -> succeeded|failed|cancelled, only for the current attempt."""
    if state not in FINISHED_STATES:
        raise ValueError(f"state: must be one of {FINISHED_STATES}, got {state!r}")
    if reason_kind is not None and reason_kind not in REASON_KINDS:
        raise ValueError(f"reason_kind: must be None or one of {REASON_KINDS}, got {reason_kind!r}")
    now = time.time()
    with session_scope(_engine(engine)) as s:
        job = _transition(s, job_id, [Job.attempt == attempt, Job.state.in_(ACTIVE_STATES)],
                          dict(state=state, reason_kind=reason_kind, reason=reason,
                               finished_at=now, lease_until=None, eta_seconds=None))
        if job is None:
            return False
        _close_attempt(s, job_id, attempt, state, reason, now)
        _state_event(s, job)
        return True


def requeue_job(job_id: int, attempt: int, reason: str, *, engine: Engine | None = None) -> bool:
    """running -> queued for another attempt (lease lost, worker stopped, infra failure).
    The caller checks attempt < max_attempts and sends the broker message afterwards."""
    now = time.time()
    with session_scope(_engine(engine)) as s:
        job = _transition(s, job_id, [Job.attempt == attempt, Job.state == "running"],
                          dict(state="queued", lease_until=None, worker_id=None,
                               eta_seconds=None, enqueued_at=now))
        if job is None:
            return False
        _close_attempt(s, job_id, attempt, "requeued", reason, now)
        _state_event(s, job, reason=reason)
        return True


def _close_attempt(s: Session, job_id: int, number: int, outcome: str, reason, now) -> None:
    s.execute(update(Attempt).where(Attempt.job_id == job_id, Attempt.number == number)
              .values(finished_at=now, outcome=outcome, reason=reason))


def expired_leases(now: float | None = None, *, engine: Engine | None = None) -> list[Job]:
    """running/cancelling jobs whose lease ran out (their worker died or hung) by the
    database's clock, or before `now` (unix seconds; math.inf: every lease) if given."""
    cutoff = db_now() if now is None else _as_unix(now)
    with session_scope(_engine(engine), write=False) as s:
        return list(s.scalars(select(Job).where(Job.state.in_(ACTIVE_STATES),
                                                Job.lease_until < cutoff).order_by(Job.id)))


def stale_queued(older_than_seconds: float, *, engine: Engine | None = None) -> list[Job]:
    """queued jobs whose last broker message is older than this (it may have been lost)."""
    cutoff = time.time() - older_than_seconds
    with session_scope(_engine(engine), write=False) as s:
        return list(s.scalars(select(Job).where(Job.state == "queued",
                                                Job.enqueued_at < cutoff).order_by(Job.id)))


def get_job(job_id: int, *, engine: Engine | None = None) -> Job | None:
    with session_scope(_engine(engine), write=False) as s:
        return s.get(Job, job_id)


def _as_unix(now) -> float:
    return now.timestamp() if hasattr(now, "timestamp") else float(now)
