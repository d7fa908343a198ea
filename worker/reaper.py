"""Recovery, run every few seconds in every worker's main process (on Celery's event-loop
timer, see celery_app.ShutdownAndReaper; no extra thread, no beat process).

- A running job whose lease expired lost its worker (killed, hung, host gone): the
  recovery rule (jobstore.recovery) sends it back to the queue for another attempt, which
  resumes from the latest checkpoint; after max_attempts it fails with the reason. A
  cancelling one is confirmed cancelled.
- A queued job whose broker message is older than `stale_after_s` may have lost it
  (e.g. Redis restarted empty): if its message is no longer in Redis (not in its queue's
  lists, not just delivered to a worker: jobstore.broker.waiting_job_ids), send it
  again. A job that simply waits in a long queue keeps its one message; a duplicate
  would be harmless (the claim), but copies would pile up on every pass.

Leases are judged on the database's clock (jobstore.expired_leases), so a host whose
clock runs ahead never takes a healthy job from its worker.

Several workers reaping at once is fine: each transition is one conditional UPDATE, so
exactly one of them wins a requeue and sends its message.
"""
from __future__ import annotations

import logging
import time

from sqlalchemy import Engine

import jobstore
from jobstore import broker, recovery
from jobstore.queues import queue_name
from jobstore.settings import Settings, get_settings

log = logging.getLogger(__name__)


def interval_s(settings: Settings) -> float:
    """Seconds between passes: half a lease, between 1 and 30 s."""
    return min(30.0, max(1.0, settings.lease_seconds / 2))


def stale_after_s(every_s: float) -> float:
    """A queued job's message counts as lost after four passes (at least 10 s)."""
    return max(10.0, 4 * every_s)


def reap_once(settings: Settings | None = None, *, engine: Engine | None = None) -> dict[str, int]:
    """One pass. Returns counts per action (for logs and tests; "waiting": stale queued
    jobs whose message is still in Redis, left alone). Never raises: a broken database or
    broker is logged and tried again on the next pass."""
    counts = {"requeued": 0, "failed": 0, "cancelled": 0, "resent": 0, "waiting": 0}
    try:
        settings = settings or get_settings()
        _reap_expired(counts, settings, engine)
        _resend_stale(counts, settings, stale_after_s(interval_s(settings)), engine)
    except Exception:
        log.exception("reaper pass failed")
    if any(n for action, n in counts.items() if action != "waiting"):
        log.info("reaper: %s", counts)
    return counts


def lease_expired(job: jobstore.Job) -> str:
    return f"lease expired: worker {job.worker_id} stopped renewing on attempt {job.attempt}"


def _reap_expired(counts: dict[str, int], settings: Settings, engine: Engine | None) -> None:
    for _, outcome in recovery.recover_expired_leases(settings, lease_expired, engine=engine):
        action = outcome.partition(":")[0]  # failed:infrastructure -> failed
        if action in counts:
            counts[action] += 1


def _resend_stale(counts: dict[str, int], settings: Settings, older_than_s: float,
                  engine: Engine | None) -> None:
    stale = jobstore.stale_queued(older_than_s, engine=engine)
    delivered_since = time.time() - older_than_s
    waiting: dict[str, set[int]] = {}  # queue -> jobs with a message in Redis, read once a pass
    for job in stale:
        # The queue it was sent to (jobs.queue) and the one a re-send would go to.
        queues = sorted({job.queue, queue_name(job.gpus, job.nodes)})
        for queue in queues:
            if queue not in waiting:
                waiting[queue] = broker.waiting_job_ids(settings, queue, delivered_since)
        if any(job.id in waiting[queue] for queue in queues):
            counts["waiting"] += 1
            continue
        if not broker.enqueue(settings, job.id, job.gpus, priority=job.priority, engine=engine,
                              nodes=job.nodes):
            return  # the broker is likely down for all of them; next pass
        counts["resent"] += 1
