"""Row 8, with real worker processes, real Redis and SQLite: the reaper re-sends only a
message that is really gone, and a free worker takes the highest-priority job first.

The stack's lease is 4 s, so the reaper runs every 2 s and counts a queued job's message
as possibly lost after 10 s (worker/reaper.py)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import redis

import jobstore
from jobstore import broker
from tests.worker.conftest import REPO, tiny_train, wait_until
from worker import reaper

STALE_S = 10  # reaper.stale_after_s(reaper.interval_s(stack settings))


def messages_for(client: redis.Redis, queue: str, job_id: int) -> int:
    """How many run messages for `job_id` wait in `queue`'s lists."""
    return sum(broker.message_job_id(json.loads(raw)) == job_id
               for key in broker.queue_keys(queue) for raw in client.lrange(key, 0, -1))


def test_row8_reaper_does_not_resend_a_message_still_queued(stack):
    assert reaper.stale_after_s(reaper.interval_s(stack.settings)) == STALE_S
    client = redis.Redis.from_url(stack.redis.url)
    stack.start_worker("w1")  # serves "cpu"; its reaper looks at every queued job
    # A job waiting in a queue no worker serves yet: a long queue, as far as it can tell.
    job_id = stack.submit(tiny_train(gpus=1))
    assert messages_for(client, "gpu1", job_id) == 1
    # Three stale periods: before the fix each one added a copy.
    deadline = time.monotonic() + 3 * STALE_S + 4
    while time.monotonic() < deadline:
        assert messages_for(client, "gpu1", job_id) == 1, "the reaper sent a second copy"
        time.sleep(0.5)
    assert stack.job(job_id).state == "queued"
    assert "'resent': 1" not in stack.worker_log("w1")

    # Now the message really is lost (Redis restarted empty): it is sent again, once.
    client.delete(*broker.queue_keys("gpu1"))
    wait_until(lambda: messages_for(client, "gpu1", job_id) == 1, STALE_S + 10,
               "the reaper to re-send the lost message")
    time.sleep(STALE_S + 4)
    assert messages_for(client, "gpu1", job_id) == 1


def _take_without_ack(stack, queue: str) -> None:
    """What a worker killed between taking a message and claiming its job leaves: the
    message in Celery's `unacked` hash, never acknowledged (a process that exits at once)."""
    script = (
        "import os, sys\n"
        "from jobstore import broker\n"
        "from jobstore.settings import Settings\n"
        "settings = Settings(broker_url=sys.argv[1])\n"
        "conn = broker.celery_client(settings).connection_for_read()\n"
        "message = conn.default_channel.basic_get(sys.argv[2], no_ack=False)\n"
        "assert message is not None, 'no message'\n"
        "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", script, stack.redis.url, queue], cwd=REPO,
                   check=True, timeout=60, capture_output=True)


def test_row8_reaper_judges_a_taken_message_by_when_it_was_taken(stack):
    """A message a worker took a moment ago is not lost (the claim is coming); one taken
    a stale period ago by a worker that never claimed is, and is sent again."""
    client = redis.Redis.from_url(stack.redis.url)
    job_id = stack.submit(tiny_train(gpus=1))
    with jobstore.session_scope(stack.engine) as s:  # its message went out long ago
        s.get(jobstore.Job, job_id).enqueued_at = time.time() - 3600
    _take_without_ack(stack, "gpu1")
    assert messages_for(client, "gpu1", job_id) == 0 and client.hlen(broker.UNACKED) == 1
    counts = reaper.reap_once(stack.settings, engine=stack.engine)
    assert counts["resent"] == 0 and counts["waiting"] == 1, counts
    time.sleep(STALE_S + 1)
    counts = reaper.reap_once(stack.settings, engine=stack.engine)
    assert counts["resent"] == 1, counts
    assert messages_for(client, "gpu1", job_id) == 1
    assert reaper.reap_once(stack.settings, engine=stack.engine)["resent"] == 0


def test_row8_high_priority_job_runs_first_when_the_worker_is_busy(stack):
    stack.start_worker("w1")
    busy = stack.submit(tiny_train(max_steps=500, checkpoint_every=1000))
    wait_until(lambda: stack.job(busy).step >= 1, 180, "the first job to train")
    low_a = stack.submit(tiny_train(), priority=0)
    low_b = stack.submit(tiny_train(), priority=3)
    high = stack.submit(tiny_train(), priority=9)
    assert {stack.job(j).state for j in (low_a, low_b, high)} == {"queued"}

    jobstore.cancel_job(busy, engine=stack.engine)  # frees the worker
    wait_until(lambda: any(stack.job(j).state != "queued" for j in (low_a, low_b, high)),
               120, "the worker to take the next job")
    assert stack.job(high).state in ("running", "succeeded"), stack.job(high).state
    assert stack.job(low_a).state == stack.job(low_b).state == "queued"
    assert stack.job(busy).state == "cancelled"
    # Then, by priority: 3 before 0.
    wait_until(lambda: stack.job(high).state == "succeeded", 180, "the high-priority job")
    wait_until(lambda: stack.job(low_b).state != "queued" or stack.job(low_a).state != "queued",
               120, "the next job")
    assert stack.job(low_b).state != "queued" and stack.job(low_a).state == "queued"
    for job_id in (low_a, low_b):
        jobstore.cancel_job(job_id, engine=stack.engine)
