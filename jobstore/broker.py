"""The one Celery producer: send "please run job N" to the queue for its GPU count.

The API (new and retried jobs), the worker (requeues, misrouted deliveries, the reaper's
re-sends) and the launcher (jobs interrupted by a crash) all send through `enqueue`.

The database row is the truth. If a send fails (Redis down), the job stays queued and
the worker's reaper re-sends stale queued jobs (jobstore.stale_queued), so nothing is lost.
"""
from __future__ import annotations

import logging
from functools import lru_cache

import redis
from celery import Celery
from sqlalchemy import Engine

from jobstore.db import get_engine
from jobstore.jobs import mark_enqueued
from jobstore.queues import queue_name
from jobstore.settings import Settings

TASK_NAME = "sam3v.run_job"
log = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def _celery(broker_url: str, visibility_timeout_s: int) -> Celery:
    app = Celery("sam3v-producer", broker=broker_url, set_as_current=False)
    app.conf.update(
        broker_transport_options={"visibility_timeout": visibility_timeout_s,
                                  "socket_connect_timeout": 2, "socket_timeout": 5},
        broker_connection_timeout=2,
        broker_connection_retry_on_startup=False,
    )
    return app


def celery_client(settings: Settings) -> Celery:
    return _celery(settings.broker_url, settings.visibility_timeout_s)


def enqueue(settings: Settings, job_id: int, gpus: int, *, engine: Engine | None = None) -> bool:
    """Send the run message and note when (jobstore.mark_enqueued). False, and a log line,
    if the broker is unreachable: the job stays queued and the reaper re-sends it later."""
    try:
        celery_client(settings).send_task(
            TASK_NAME, args=[job_id], queue=queue_name(gpus),
            retry=True, retry_policy={"max_retries": 1, "interval_start": 0.2,
                                      "interval_step": 0.2, "interval_max": 0.5})
    except Exception as err:  # any transport error: the reaper re-sends later
        log.warning("job %s stays queued; broker send failed: %s", job_id, err)
        return False
    mark_enqueued(job_id, engine=engine if engine is not None else get_engine(settings))
    return True


def _redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.broker_url, socket_connect_timeout=2, socket_timeout=2)


def ping(settings: Settings) -> None:
    """Raises if the broker does not answer."""
    _redis(settings).ping()


def queue_depths(settings: Settings) -> dict[str, int]:
    """Messages waiting per queue this deployment serves (Celery's Redis queues are lists)."""
    client = _redis(settings)
    names = [queue_name(g) for g in settings.gpu_counts]
    return {name: int(client.llen(name)) for name in names}
