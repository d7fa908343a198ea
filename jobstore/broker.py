"""The one Celery producer: send "please run job N" to the queue for its GPU count.

The API (new and retried jobs), the worker (requeues, misrouted deliveries, the reaper's
re-sends) and the launcher (jobs interrupted by a crash) all send through `enqueue`.

The database row is the truth. If a send fails (Redis down), the job stays queued and
the worker's reaper re-sends a stale queued job whose message is no longer in Redis
(jobstore.stale_queued, `waiting_job_ids`), so nothing is lost and nothing is doubled.

Priority: a job's priority is 0..9 (POST /jobs `priority`, default 0), and a higher one
runs first. Celery's Redis transport keeps one list per priority step (the queue's own
name for step 0, then "<queue>\x06\x16<step>") and a worker pops the lowest step first:
lower number = sooner, the opposite of ours. So a job of priority p is sent with
message priority 9 - p (`redis_priority`), with ten steps, and the producer and every
worker use the same transport options (`transport_options`). Within one priority, jobs
run in the order they were sent.
"""
from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable
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

MAX_PRIORITY = 9                                # a job's priority: 0 (default) .. 9 (first)
PRIORITY_STEPS = list(range(MAX_PRIORITY + 1))  # one Redis list per message priority
QUEUE_SEP = "\x06\x16"                          # kombu's default: "<queue>\x06\x16<step>"
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"  # delivered, not yet acknowledged


def redis_priority(priority: int) -> int:
    """Our priority (higher first) -> the Redis transport's message priority (lower first)."""
    return MAX_PRIORITY - min(MAX_PRIORITY, max(0, int(priority)))


def transport_options(visibility_timeout_s: int) -> dict:
    """Broker transport options the producer and the worker must share: the priority lists
    a message is put in are the ones the worker pops from, highest priority first."""
    return {"visibility_timeout": visibility_timeout_s, "priority_steps": PRIORITY_STEPS,
            "sep": QUEUE_SEP, "queue_order_strategy": "priority",
            "unacked_key": UNACKED, "unacked_index_key": UNACKED_INDEX}


def queue_keys(queue: str) -> list[str]:
    """The Redis lists holding `queue`'s waiting messages, the first-served one first."""
    return [f"{queue}{QUEUE_SEP}{step}" if step else queue for step in PRIORITY_STEPS]


@lru_cache(maxsize=8)
def _celery(broker_url: str, visibility_timeout_s: int) -> Celery:
    app = Celery("sam3v-producer", broker=broker_url, set_as_current=False)
    app.conf.update(
        broker_transport_options={**transport_options(visibility_timeout_s),
                                  "socket_connect_timeout": 2, "socket_timeout": 5},
        broker_connection_timeout=2,
        broker_connection_retry_on_startup=False,
    )
    return app


def celery_client(settings: Settings) -> Celery:
    return _celery(settings.broker_url, settings.visibility_timeout_s)


def enqueue(settings: Settings, job_id: int, gpus: int, *, priority: int = 0,
            engine: Engine | None = None, nodes: int = 1) -> bool:
    """Send the run message (with the job's `priority`, see the module docstring) and note
    when (jobstore.mark_enqueued). False, and a log line, if the broker is unreachable:
    the job stays queued and the reaper re-sends it later."""
    try:
        celery_client(settings).send_task(
            TASK_NAME, args=[job_id], queue=queue_name(gpus, nodes), priority=redis_priority(priority),
            retry=True, retry_policy={"max_retries": 1, "interval_start": 0.2,
                                      "interval_step": 0.2, "interval_max": 0.5})
    except Exception as err:  # any transport error: the reaper re-sends later
        log.warning("job %s stays queued; broker send failed: %s", job_id, err)
        return False
    mark_enqueued(job_id, engine=engine if engine is not None else get_engine(settings))
    return True


@lru_cache(maxsize=8)
def _redis_client(broker_url: str) -> redis.Redis:
    """One client per broker URL per process, over a small pool: a fresh client per call
    opened a new connection each time (every unauthenticated GET /readyz did), and the
    pool bounds how many a burst of callers opens; a caller waits up to 2 s for a free one.
    redis-py reconnects a dropped connection, and a forked child gets its own pool."""
    pool = redis.BlockingConnectionPool.from_url(broker_url, max_connections=8, timeout=2,
                                                 socket_connect_timeout=2, socket_timeout=2)
    return redis.Redis(connection_pool=pool)


def _redis(settings: Settings) -> redis.Redis:
    return _redis_client(settings.broker_url)


def ping(settings: Settings) -> None:
    """Raises if the broker does not answer."""
    _redis(settings).ping()


def queue_depths(settings: Settings) -> dict[str, int]:
    """Messages waiting per queue this deployment serves (Celery's Redis queues are lists,
    one per priority step)."""
    client = _redis(settings)
    names = [queue_name(g) for g in settings.gpu_counts]
    names += [queue_name(g, nodes=2) for g in settings.slurm_gpu_counts]  # multi-node queues
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            for key in queue_keys(name):
                pipe.llen(key)
        lengths = pipe.execute()
    steps = len(PRIORITY_STEPS)
    return {name: sum(int(n) for n in lengths[i * steps:(i + 1) * steps])
            for i, name in enumerate(names)}


def message_job_id(message: dict) -> int | None:
    """The job a Celery message (kombu's JSON envelope, protocol 2) asks to run; None for
    anything else."""
    try:
        if message["headers"]["task"] != TASK_NAME:
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return int(args[0])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _job_ids(raw_messages: Iterable[bytes]) -> set[int]:
    found = set()
    for raw in raw_messages:
        try:
            job_id = message_job_id(json.loads(raw))
        except (ValueError, TypeError):
            continue
        if job_id is not None:
            found.add(job_id)
    return found


def waiting_job_ids(settings: Settings, queue: str, delivered_since: float) -> set[int]:
    """Jobs whose run message is still in Redis: waiting in one of `queue`'s lists, or
    delivered to a worker (Celery's `unacked` hash) at or after `delivered_since` (unix
    seconds) and not yet acknowledged, i.e. a worker is about to claim it. A message a
    worker took earlier than that and never acknowledged belonged to a worker that died
    before its claim (Redis would hand it out again only after the visibility timeout),
    so it does not count. The lists are read before `unacked`: a message moving from one
    to the other meanwhile is seen in one of them."""
    client = _redis(settings)
    with client.pipeline(transaction=True) as pipe:
        for key in queue_keys(queue):
            pipe.lrange(key, 0, -1)
        pipe.zrangebyscore(UNACKED_INDEX, delivered_since, "+inf")
        *lists, recent_tags = pipe.execute()
    found = _job_ids(raw for messages in lists for raw in messages)
    if recent_tags:
        for entry in client.hmget(UNACKED, recent_tags):
            try:  # kombu stores [message, exchange, routing_key]
                message = json.loads(entry)[0] if entry else None
            except (ValueError, TypeError, IndexError):
                continue
            job_id = message_job_id(message) if isinstance(message, dict) else None
            if job_id is not None:
                found.add(job_id)
    return found
