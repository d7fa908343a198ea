"""Webhooks: a real HTTP receiver on 127.0.0.1 gets a signed POST for every state of a
job, failed sends are retried with backoff, and only allowlisted hosts are ever called."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

import jobstore
from api.main import create_app
from jobstore.tokens import create_token
from tests.api.conftest import train_body
from tests.support.procs import wait_until

SECRET = "webhook-test-secret"


class Receiver:
    """Answers each POST with the next status of `statuses` (then 200); keeps raw bodies."""

    def __init__(self, statuses=()):
        self.calls: list[tuple[dict, bytes]] = []
        self.statuses = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if status in (301, 302, 307):
                    self.send_header("Location", f"http://127.0.0.1:{receiver.port}/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def states(self) -> list[str]:
        return [json.loads(body)["state"] for _, body in self.calls]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()


def _stack(settings, receiver, **changes):
    settings = settings.model_copy(update={
        "webhook_allowed_hosts": [f"127.0.0.1:{receiver.port}"], "webhook_secret": SECRET,
        "webhook_poll_s": 0.05, **changes})
    return settings, TestClient(create_app(settings))


def _webhook_events(engine, job_id: int) -> list[dict]:
    with jobstore.session_scope(engine, write=False) as s:
        rows = s.query(jobstore.JobEvent).filter_by(job_id=job_id, kind="webhook").order_by(
            jobstore.JobEvent.id).all()
        return [row.data for row in rows]


def test_every_state_of_a_job_reaches_the_receiver_signed(settings, receiver):
    settings, client = _stack(settings, receiver)
    with client:
        auth = {"Authorization": f"Bearer {create_token(settings, 'alice', False)}"}
        r = client.post("/jobs", json=train_body(webhook_url=receiver.url), headers=auth)
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["webhook_url"] == receiver.url
        engine = jobstore.get_engine(settings)
        # The worker's own transitions: they queue deliveries in the same transaction.
        first = jobstore.claim_job(job["id"], "test-worker", 60, engine=engine)
        assert jobstore.requeue_job(job["id"], first.attempt, "worker stopped", engine=engine)
        second = jobstore.claim_job(job["id"], "test-worker", 60, engine=engine)
        assert jobstore.finish_job(job["id"], second.attempt, "succeeded", None, None, engine=engine)
        wait_until(lambda: len(receiver.calls) >= 5, 15, "five webhook calls")

        assert receiver.states() == ["queued", "running", "queued", "running", "succeeded"]
        assert json.loads(receiver.calls[2][1])["reason"] == "worker stopped"
        for headers, body in receiver.calls:
            expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(headers["X-Sam3v-Signature"], expected)
            assert headers["Content-Type"] == "application/json"
            sent = json.loads(body)
            assert sent["job_id"] == job["id"] and sent["kind"] == "train"
        assert len({json.loads(b)["event_id"] for _, b in receiver.calls}) == 5
        wait_until(lambda: len(_webhook_events(engine, job["id"])) == 5, 5, "delivery events")
        events = _webhook_events(engine, job["id"])
        assert [e["for_state"] for e in events] == receiver.states()
        assert all(e["outcome"] == "delivered" and e["status"] == 200 for e in events)


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(settings):
    flaky = Receiver(statuses=[500, 503])
    settings, client = _stack(settings, flaky)
    with client:
        auth = {"Authorization": f"Bearer {create_token(settings, 'alice', False)}"}
        job = client.post("/jobs", json=train_body(webhook_url=flaky.url), headers=auth).json()
        engine = jobstore.get_engine(settings)
        # 1 s then 2 s of backoff: the third try gets the 200
        wait_until(lambda: [e["outcome"] for e in _webhook_events(engine, job["id"])]
                   == ["pending", "pending", "delivered"], 15, "two retries, then delivery")
        tries = _webhook_events(engine, job["id"])
        assert [e["status"] for e in tries] == [500, 503, 200]
        assert [e["try"] for e in tries] == [1, 2, 3]
        assert flaky.states() == ["queued"] * 3
        assert len({b for _, b in flaky.calls}) == 1  # the same bytes each time
    flaky.server.shutdown()

    down = Receiver(statuses=[302])  # a redirect is not followed and not a delivery
    settings, client = _stack(settings, down, webhook_max_attempts=1)
    with client:
        auth = {"Authorization": f"Bearer {create_token(settings, 'bob', False)}"}
        job = client.post("/jobs", json=train_body(webhook_url=down.url), headers=auth).json()
        engine = jobstore.get_engine(settings)
        wait_until(lambda: _webhook_events(engine, job["id"]), 10, "the one try")
        (only_try,) = _webhook_events(engine, job["id"])
        assert (only_try["status"], only_try["outcome"], only_try["try"]) == (302, "failed", 1)
        assert only_try["for_event"] == json.loads(down.calls[0][1])["event_id"]
        assert len(down.calls) == 1  # /elsewhere never called
    down.server.shutdown()


@pytest.mark.parametrize("url, reason", [
    ("http://10.0.0.1:80/x", "is not in this server's SAM3V_WEBHOOK_ALLOWED_HOSTS"),
    ("http://127.0.0.1:1/x", "is not in this server's SAM3V_WEBHOOK_ALLOWED_HOSTS"),
    ("ftp://127.0.0.1/x", "must be an http:// or https:// URL"),
    ("http://user:pw@127.0.0.1:{port}/x", "must not carry a user name or password"),
])
def test_only_allowlisted_hosts_may_be_named(settings, receiver, url, reason):
    settings, client = _stack(settings, receiver)
    with client:
        auth = {"Authorization": f"Bearer {create_token(settings, 'alice', False)}"}
        r = client.post("/jobs", json=train_body(webhook_url=url.format(port=receiver.port)),
                        headers=auth)
        assert r.status_code == 422, r.text
        assert any(p.startswith("webhook_url: ") and reason in p for p in r.json()["errors"]), r.text
    assert receiver.calls == []


def test_webhooks_are_off_by_default(client, auth, receiver):
    r = client.post("/jobs", json=train_body(webhook_url=receiver.url), headers=auth["alice"])
    assert r.status_code == 422
    assert "webhook_url: webhooks are off on this server" in r.json()["errors"][0]
    r = client.post("/jobs", json=train_body(), headers=auth["alice"])
    assert r.status_code == 201 and r.json()["webhook_url"] is None
