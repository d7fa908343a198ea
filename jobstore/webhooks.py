"""The webhook outbox: a row per state change of a job that has a webhook_url, written in
the transaction that changes the state, then claimed, sent and retried by the API's
sender (api/webhooks.py). Sending lives in the API; this module is only the database side,
so the worker, whose transitions also queue deliveries, never makes HTTP calls.

Retries back off exponentially (1 s, 2 s, 4 s ... capped at BACKOFF_CAP_S) until the
server's webhook_max_attempts; each try is recorded as a "webhook" event of the job."""
from __future__ import annotations

import json
import time

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session

from jobstore.db import session_scope
from jobstore.models import Job, JobEvent, WebhookDelivery

BACKOFF_CAP_S = 300.0
LEASE_S = 60.0  # longer than one send (timeout + signing); an expired lease is re-sent


def summary(job: Job, event: JobEvent) -> dict:
    """What a receiver gets: enough to act without a GET (state, why, where it got to)."""
    return {"job_id": job.id, "event_id": event.id, "kind": job.kind, "name": job.name,
            "step": job.step, "max_steps": job.max_steps, "time": event.created_at,
            **event.data}  # state, attempt, reason_kind, reason


def queue_delivery(session: Session, job: Job, event: JobEvent) -> None:
    """Inside the state change's transaction; `event` must be flushed (it has an id)."""
    body = json.dumps(summary(job, event), sort_keys=True, separators=(",", ":"))
    now = time.time()
    session.add(WebhookDelivery(job_id=job.id, url=job.webhook_url, body=body, state="pending",
                                attempts=0, next_at=now, lease_until=None, created_at=now))


def claim_due(engine: Engine, limit: int = 16) -> list[WebhookDelivery]:
    """Pending deliveries whose time has come, leased to the caller (oldest first, so a
    receiver sees a job's states in order). A lease that ran out (its sender died) makes
    the row due again."""
    now = time.time()
    claimed = []
    with session_scope(engine) as s:
        due = s.scalars(select(WebhookDelivery.id).where(
            WebhookDelivery.state == "pending", WebhookDelivery.next_at <= now,
            or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now))
            .order_by(WebhookDelivery.id).limit(limit)).all()
        for delivery_id in due:
            row = s.scalars(update(WebhookDelivery).where(
                WebhookDelivery.id == delivery_id, WebhookDelivery.state == "pending",
                or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now))
                .values(lease_until=now + LEASE_S).returning(WebhookDelivery),
                execution_options={"synchronize_session": False}).first()
            if row is not None:
                claimed.append(row)
        s.expunge_all()
    return claimed


def record_try(engine: Engine, delivery: WebhookDelivery, *, status: int | None,
               error: str | None, max_attempts: int) -> str:
    """Store one send's outcome and log it as the job's "webhook" event; returns the
    delivery's new state (delivered, pending with a later next_at, or failed)."""
    attempts = delivery.attempts + 1
    ok = status is not None and 200 <= status < 300
    state = "delivered" if ok else "failed" if attempts >= max_attempts else "pending"
    next_at = time.time() + min(BACKOFF_CAP_S, 2.0 ** (attempts - 1))
    with session_scope(engine) as s:
        s.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery.id)
                  .values(attempts=attempts, state=state, next_at=next_at, lease_until=None))
        sent = json.loads(delivery.body)
        s.add(JobEvent(job_id=delivery.job_id, kind="webhook", created_at=time.time(), data={
            "delivery_id": delivery.id, "for_state": sent["state"], "for_event": sent["event_id"],
            "try": attempts, "status": status, "error": error, "outcome": state}))
    return state
