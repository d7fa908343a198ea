"""Recovery, run every few seconds in every worker's main process (on Celery's event-loop
timer, see celery_app.ShutdownAndReaper; no extra thread, no beat process).

- A running job whose lease expired lost its worker (killed, hung, host gone): the
  recovery rule (jobstore.recovery) sends it back to the queue for another attempt, which
  resumes from the latest checkpoint; after max_attempts it fails with the reason. A
  cancelling one is confirmed cancelled.
- A queued job whose broker message is older than `stale_after_s` may have lost it
  (e.g. Redis restarted empty): send it again. A duplicate is harmless (the claim).

Several workers reaping at once is fine: each transition is one conditional UPDATE, so
exactly one of them wins a requeue and sends its message.
"""
from __future__ import annotations

import logging

import jobstore
from jobstore import broker, recovery
from jobstore.settings import Settings, get_settings

log = logging.getLogger(__name__)


def interval_s(settings: Settings) -> float:
    """Seconds between passes: half a lease, between 1 and 30 s."""
    return min(30.0, max(1.0, settings.lease_seconds / 2))


def stale_after_s(every_s: float) -> float:
    """A queued job's message counts as lost after four passes (at least 10 s)."""
    return max(10.0, 4 * every_s)


def reap_once() -> dict[str, int]:
    """One pass. Returns counts per action (for logs and tests). Never raises: a broken
    database or broker is logged and tried again on the next pass."""
    counts = {"requeued": 0, "failed": 0, "cancelled": 0, "resent": 0}
    try:
        settings = get_settings()
        _reap_expired(counts, settings)
        _resend_stale(counts, settings, stale_after_s(interval_s(settings)))
    except Exception:
        log.exception("reaper pass failed")
    if any(counts.values()):
        log.info("reaper: %s", counts)
    return counts


def lease_expired(job: jobstore.Job) -> str:
    return f"lease expired: worker {job.worker_id} stopped renewing on attempt {job.attempt}"


def _reap_expired(counts: dict[str, int], settings: Settings) -> None:
    for _, outcome in recovery.recover_expired_leases(settings, lease_expired):
        action = outcome.partition(":")[0]  # failed:infrastructure -> failed
        if action in counts:
            counts[action] += 1


def _resend_stale(counts: dict[str, int], settings: Settings, older_than_s: float) -> None:
    for job in jobstore.stale_queued(older_than_s):
        if not broker.enqueue(settings, job.id, job.gpus):
            return  # the broker is likely down for all of them; next pass
        counts["resent"] += 1
