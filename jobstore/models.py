"""The schema. Migrations in jobstore/migrations/versions mirror it; a test checks they agree.

A job's run directory is not stored: it is RUNS_ROOT/job-<id>
(`sam3_video.run_layout.job_dir(settings.runs_root, job.id)`), on every host that mounts
RUNS_ROOT.

Times are unix seconds (float): portable across SQLite and PostgreSQL without time-zone
surprises, and lease arithmetic is plain subtraction.
"""
from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JOB_STATES = ("queued", "running", "cancelling", "succeeded", "failed", "cancelled")
FINISHED_STATES = ("succeeded", "failed", "cancelled")
ACTIVE_STATES = ("running", "cancelling")
# Why a job failed (jobs.reason_kind, a plain string column: no constraint to migrate).
# config, oom, time_limit, disk_quota and disk_full are never retried (the same run would
# fail the same way); infrastructure is retried while attempts remain.
REASON_KINDS = ("config", "oom", "infrastructure", "cancelled", "time_limit", "disk_quota",
                "disk_full")


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)


class Token(Base):
    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)  # never the token itself
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float)  # None: valid until revoked
    revoked_at: Mapped[float | None] = mapped_column(Float)  # kept, so a 401 can say "revoked"


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(200), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    gpus: Mapped[int] = mapped_column(Integer)
    queue: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict] = mapped_column(JSON)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    # Seconds of running time this job may use; None: the worker's SAM3V_JOB_TIME_LIMIT_S.
    time_limit_s: Mapped[int | None] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[float | None] = mapped_column(Float)
    step: Mapped[int] = mapped_column(Integer, default=0)
    max_steps: Mapped[int | None] = mapped_column(Integer)
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    reason_kind: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    enqueued_at: Mapped[float] = mapped_column(Float)  # last time a broker message was sent
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    # Where the API POSTs this job's state changes (api/webhooks.py); None: nowhere.
    webhook_url: Mapped[str | None] = mapped_column(Text)

    # AUTOINCREMENT on SQLite: an id is never handed out twice, even after its job was
    # deleted (a client holding an old id must not see someone else's new job). SQLite's
    # plain INTEGER PRIMARY KEY reuses the highest free id; PostgreSQL's sequence never
    # reuses one. Migration 0004 rebuilds the table with it.
    __table_args__ = {"sqlite_autoincrement": True}

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def nodes(self) -> int:
        """Machines the job spans (its spec's `nodes`; specs without one run on one)."""
        return int((self.config or {}).get("nodes", 1))


class Attempt(Base):
    __tablename__ = "attempts"
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    outcome: Mapped[str | None] = mapped_column(String(16))  # succeeded|failed|cancelled|requeued
    reason: Mapped[str | None] = mapped_column(Text)


class Metric(Base):
    __tablename__ = "metrics"
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)  # None: NaN/inf (not JSON, not SQLite)
    time: Mapped[float] = mapped_column(Float)
    attempt: Mapped[int] = mapped_column(Integer)


class MetricLatest(Base):
    """Newest point per (job, metric name), kept by add_metrics, so a job's detail view
    reads a handful of rows instead of scanning a long training history."""
    __tablename__ = "metric_latest"
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float | None] = mapped_column(Float)
    time: Mapped[float] = mapped_column(Float)
    attempt: Mapped[int] = mapped_column(Integer)


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    step: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)  # multi-GB files
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    body_sha256: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[float] = mapped_column(Float)


class JobEvent(Base):
    """Append-only; its id is the SSE event id, so Last-Event-ID survives restarts."""
    __tablename__ = "job_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # state|progress|metrics|checkpoint
    data: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_job_events_job_id_id", "job_id", "id"),)


class WebhookDelivery(Base):
    """One state change to POST to a job's webhook_url: an outbox row written in the same
    transaction as the state event (so no change is lost when a process dies), sent and
    retried by the API's sender (api/webhooks.py), which claims a row with a lease so two
    API processes never send it twice at once."""
    __tablename__ = "webhook_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)  # the exact bytes that are signed and sent
    state: Mapped[str] = mapped_column(String(16))  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[float] = mapped_column(Float)
    lease_until: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_webhook_deliveries_state_next_at", "state", "next_at"),)
