"""Webhooks: which URLs a job may name, the signature, and the sender that empties the
outbox (jobstore/webhooks.py) from a thread of each API process.

A receiver checks `X-Sam3v-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>` against
the raw bytes it got (hmac.compare_digest), and may see a delivery twice (a send that
timed out after the receiver answered is retried): `event_id` in the body tells repeats
apart. Redirects are not followed, so an allowed host cannot bounce the call elsewhere."""
from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Engine

from jobstore import webhooks as outbox
from jobstore.settings import Settings

SIGNATURE_HEADER = "X-Sam3v-Signature"
log = logging.getLogger("sam3v.webhooks")


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def url_problem(url: str, settings: Settings) -> str | None:
    """Why a job may not name `url` on this server, or None. An allowlist entry "host"
    admits any port of that host, "host:port" only that port."""
    if not settings.webhook_allowed_hosts or not settings.webhook_secret:
        return ("webhooks are off on this server (the admin sets SAM3V_WEBHOOK_ALLOWED_HOSTS "
                "and SAM3V_WEBHOOK_SECRET)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        return f"not a URL ({err})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password"
    host = parts.hostname.lower()
    allowed = {entry.lower() for entry in settings.webhook_allowed_hosts}
    if host in allowed or (port is not None and f"{host}:{port}" in allowed):
        return None
    return f"host {parts.netloc!r} is not in this server's SAM3V_WEBHOOK_ALLOWED_HOSTS"


class WebhookSender:
    """Sends due deliveries every `webhook_poll_s` until stopped. Several API processes may
    each run one: a delivery is leased to one sender at a time (jobstore.webhooks)."""

    def __init__(self, settings: Settings, engine: Engine):
        self.settings, self.engine = settings, engine
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.settings.webhook_timeout_s + 5)

    def _run(self) -> None:
        with httpx.Client(follow_redirects=False, timeout=self.settings.webhook_timeout_s) as http:
            while not self._stop.is_set():
                try:
                    for delivery in outbox.claim_due(self.engine):
                        self._send(http, delivery)
                except Exception:  # a database hiccup must not end the thread
                    log.exception("webhook sender: one round failed; trying again")
                self._stop.wait(self.settings.webhook_poll_s)

    def _send(self, http: httpx.Client, delivery) -> None:
        status = error = None
        problem = url_problem(delivery.url, self.settings)  # the allowlist may have shrunk
        if problem:
            error = problem
        else:
            body = delivery.body.encode()
            try:
                status = http.post(delivery.url, content=body, headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign(body, self.settings.webhook_secret),
                    "X-Sam3v-Delivery": str(delivery.id),
                    "User-Agent": "sam3v-webhooks"}).status_code
            except httpx.HTTPError as err:
                error = f"{type(err).__name__}: {err}"[:300]
        # A host taken off the allowlist fails at once: retrying cannot make it allowed.
        outcome = outbox.record_try(self.engine, delivery, status=status, error=error,
                                    max_attempts=1 if problem else self.settings.webhook_max_attempts)
        if outcome != "delivered":
            log.warning("webhook %s for job %s: %s (%s)", delivery.id, delivery.job_id,
                        error or f"HTTP {status}", outcome)
