"""jobstore: what the API, the worker and the launcher share about jobs.

The room below the three service rooms: api/, worker/ and deploy/ import it; it imports
none of them, only sam3_video's torch-free modules (config, run_layout). It holds:

    settings     the one Settings object (SAM3V_* environment variables)
    models, db   the schema; engines and sessions
    jobs         the state transitions (re-exported here with models, db and migrate)
    migrate      Alembic migrations up to head (migrations/versions holds the revisions)
    queues       which Celery queue serves a job
    broker       the one Celery producer: enqueue(settings, job_id, gpus), TASK_NAME
    recovery     the one rule for an attempt that ended without an answer: requeue with
                 attempt+1 while attempts remain, else fail
    tokens       create a user's API token (only its sha256 is stored)
    checkpoints  a previous job's checkpoint file, for model.init.job_id

A job's run directory is not stored: sam3_video.run_layout.job_dir(settings.runs_root, id).

How to use it (worker, launcher, tests):

    import jobstore
    from jobstore.settings import get_settings

    jobstore.migrate(get_settings())        # once at start; safe to run concurrently
    job = jobstore.claim_job(job_id, worker_id, lease_seconds)
    state = jobstore.renew_lease(job.id, job.attempt, lease_seconds)

Every transition function takes an optional keyword `engine=`. Without it the
process-wide engine for `get_settings().database_url` is used (`jobstore.get_engine()`),
so the worker normally passes nothing. Tests pass `engine=jobstore.create_db_engine(url)`
or set SAM3V_DATABASE_URL before the first call. Each call is its own short transaction:
one conditional UPDATE plus a job_events row. Returned Job objects are detached
snapshots; read their fields freely, do not expect them to refresh.

For other queries: `with jobstore.session_scope(engine, write=False) as s: ...`.
"""
from jobstore.db import create_db_engine, get_engine, normalise_url, reader, session_scope
from jobstore.jobs import (active_jobs_of, add_checkpoint, add_event, add_metrics, cancel_job,
                           claim_job, create_job, delete_job, expired_leases, finish_job, get_job,
                           mark_enqueued, record_progress, renew_lease, requeue_job,
                           retry_job, stale_queued)
from jobstore.migrate import migrate
from jobstore.models import (ACTIVE_STATES, FINISHED_STATES, JOB_STATES, REASON_KINDS,
                             Attempt, Base, Checkpoint, IdempotencyKey, Job, JobEvent,
                             Metric, MetricLatest, Token, User)

__all__ = [
    "create_db_engine", "get_engine", "normalise_url", "reader", "session_scope",
    "active_jobs_of", "add_checkpoint", "add_event", "add_metrics", "cancel_job", "claim_job",
    "create_job", "delete_job", "expired_leases", "finish_job", "get_job", "mark_enqueued",
    "record_progress", "renew_lease", "requeue_job", "retry_job", "stale_queued", "migrate",
    "ACTIVE_STATES", "FINISHED_STATES", "JOB_STATES", "REASON_KINDS", "Attempt", "Base",
    "Checkpoint", "IdempotencyKey", "Job", "JobEvent", "Metric", "MetricLatest", "Token", "User",
]
