"""Row 8 through the real app, SQLite and Redis: a job's priority reaches the broker
message (higher first, sent as Redis priority 9 - p)."""
from __future__ import annotations

import json

import redis

from jobstore import broker
from tests.api.conftest import train_body


def test_row8_priority_is_the_message_priority_highest_first(client, auth, settings):
    r_broker = redis.Redis.from_url(settings.broker_url)
    r_broker.delete(*broker.queue_keys("cpu"))
    ids = {}
    for priority in (0, 4, 9):
        r = client.post("/jobs", json=train_body(priority=priority), headers=auth["alice"])
        assert r.status_code == 201, r.text
        assert r.json()["priority"] == priority
        ids[priority] = r.json()["id"]
    # The lists a worker pops in order (lowest Redis priority first): 9 -> "cpu" itself.
    waiting = [[broker.message_job_id(json.loads(m)) for m in r_broker.lrange(key, 0, -1)]
               for key in broker.queue_keys("cpu")]
    assert [ids for ids in waiting if ids] == [[ids[9]], [ids[4]], [ids[0]]]
    assert waiting[0] == [ids[9]] and waiting[5] == [ids[4]] and waiting[9] == [ids[0]]
    message = json.loads(r_broker.lindex("cpu", 0))
    assert message["properties"]["priority"] == 0 == broker.redis_priority(9)
    assert broker.queue_depths(settings)["cpu"] == 3
