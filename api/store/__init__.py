"""The job store: schema, migrations and state transitions, shared by API and worker.

How to use it (worker, launcher, tests):

    from api.settings import get_settings
    from api import store

    store.migrate(get_settings())           # once at start; safe to run concurrently
    job = store.claim_job(job_id, worker_id, lease_seconds)
    state = store.renew_lease(job.id, job.attempt, lease_seconds)

Every transition function takes an optional keyword `engine=`. Without it the
process-wide engine for `get_settings().database_url` is used (`store.get_engine()`),
so the worker normally passes nothing. Tests pass `engine=store.create_db_engine(url)`
or set SAM3V_DATABASE_URL before the first call. Each call is its own short transaction:
one conditional UPDATE plus a job_events row. Returned Job objects are detached
snapshots; read their fields freely, do not expect them to refresh.

For other queries: `with store.session_scope(engine, write=False) as s: ...`.
"""
from api.store.db import create_db_engine, get_engine, normalise_url, reader, session_scope
from api.store.jobs import (add_checkpoint, add_event, add_metrics, cancel_job, claim_job,
                            create_job, delete_job, expired_leases, finish_job, get_job,
                            mark_enqueued, record_progress, renew_lease, requeue_job,
                            retry_job, stale_queued)
from api.store.migrate import migrate
from api.store.models import (ACTIVE_STATES, FINISHED_STATES, JOB_STATES, REASON_KINDS,
                              Attempt, Base, Checkpoint, IdempotencyKey, Job, JobEvent,
                              Metric, MetricLatest, Token, User)

__all__ = [
    "create_db_engine", "get_engine", "normalise_url", "reader", "session_scope",
    "add_checkpoint", "add_event", "add_metrics", "cancel_job", "claim_job", "create_job",
    "delete_job", "expired_leases", "finish_job", "get_job", "mark_enqueued",
    "record_progress", "renew_lease", "requeue_job", "retry_job", "stale_queued", "migrate",
    "ACTIVE_STATES", "FINISHED_STATES", "JOB_STATES", "REASON_KINDS", "Attempt", "Base",
    "Checkpoint", "IdempotencyKey", "Job", "JobEvent", "Metric", "MetricLatest", "Token", "User",
]
