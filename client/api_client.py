"""A small synchronous httpx client for the job API: one method per endpoint (the CLI
and tests use it).

Errors: an HTTP error answer raises ApiError (its `status_code`, `detail` and `errors`
are the server's); a connection that could not be made, even after the retries of an
idempotent GET, raises httpx.TransportError.
"""
from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

FINISHED_STATES = ("succeeded", "failed", "cancelled")
GET_RETRIES = 3          # extra tries of an idempotent GET after a connection error
RETRY_BACKOFF_S = 0.5    # doubled after each try
# The connection failed or dropped: what submit (same Idempotency-Key), events (resumed with
# Last-Event-ID) and GETs retry.
CONNECTION_LOST = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)


class ApiError(RuntimeError):
    """The API answered with an error; the message carries its status and body."""

    def __init__(self, response: httpx.Response):
        self.status_code = response.status_code
        try:
            response.read()  # a streamed answer (events, download) is not read yet
            try:
                self.body: Any = response.json()
            except ValueError:
                self.body = response.text
        except (httpx.HTTPError, httpx.StreamError):
            self.body = ""
        body = self.body if isinstance(self.body, dict) else {}
        self.detail: str = str(body.get("detail") or self.body or response.reason_phrase)
        self.errors: list[str] = [str(e) for e in body.get("errors") or []]
        super().__init__(f"HTTP {response.status_code} from {response.request.method} "
                         f"{response.request.url.path}: {self.detail}")


class ChecksumError(RuntimeError):
    """A downloaded file's sha256 is not the one the server announced (the file is deleted)."""


class SseEvent(dict):
    """One Server-Sent Event: `id` (int or None), `event` (its kind) and `data` (parsed JSON)."""

    @property
    def id(self) -> int | None:
        return self["id"]

    @property
    def event(self) -> str:
        return self["event"]

    @property
    def data(self) -> Any:
        return self["data"]


class Sam3vClient:
    """The job API at `url`, authenticated by `token` (a bearer token)."""

    def __init__(self, url: str, token: str | None, timeout_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None, retries: int = GET_RETRIES):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.retries = retries
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s,
                                 transport=transport)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Sam3vClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing
    @staticmethod
    def _check(response: httpx.Response) -> httpx.Response:
        if response.is_error:
            raise ApiError(response)
        return response

    def _json(self, response: httpx.Response) -> Any:
        return self._check(response).json()

    def _get(self, path: str, **kwargs) -> httpx.Response:
        """GET with a few retries (exponential backoff) on connection errors: GETs are idempotent."""
        delay = RETRY_BACKOFF_S
        for attempt in range(self.retries + 1):
            try:
                return self.http.get(path, **kwargs)
            except (*CONNECTION_LOST, httpx.ConnectTimeout):
                if attempt == self.retries:
                    raise
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    # -- jobs
    def submit(self, kind: str, config: dict, gpus: int | None = None, name: str | None = None,
               priority: int | None = None, time_limit_s: int | None = None,
               idempotency_key: str | None = None) -> dict:
        """POST /jobs. An Idempotency-Key is generated unless given, and the POST is retried
        once with the same key after a connection error: the server replays the job the
        first try created instead of creating a second one."""
        body: dict = {"kind": kind, "config": config}
        for key, value in (("gpus", gpus), ("name", name), ("priority", priority),
                           ("time_limit_s", time_limit_s)):
            if value is not None:
                body[key] = value
        headers = {"Idempotency-Key": idempotency_key or f"sam3v-{uuid.uuid4().hex}"}
        try:
            response = self.http.post("/jobs", json=body, headers=headers)
        except CONNECTION_LOST:
            time.sleep(RETRY_BACKOFF_S)
            response = self.http.post("/jobs", json=body, headers=headers)
        return self._json(response)

    def job(self, job_id: int) -> dict:
        """GET /jobs/{id}: the job's detail."""
        return self._json(self._get(f"/jobs/{job_id}"))

    def jobs_page(self, state: str | None = None, kind: str | None = None, name: str | None = None,
                  limit: int | None = None, cursor: str | None = None) -> dict:
        """GET /jobs: one page, {items, next_cursor}, newest first."""
        params = {k: v for k, v in (("state", state), ("kind", kind), ("name", name),
                                    ("limit", limit), ("cursor", cursor)) if v is not None}
        return self._json(self._get("/jobs", params=params))

    def jobs(self, state: str | None = None, kind: str | None = None, name: str | None = None,
             limit: int | None = None, cursor: str | None = None) -> list[dict]:
        """One page of jobs (the items of jobs_page)."""
        return self.jobs_page(state, kind, name, limit, cursor)["items"]

    def iter_jobs(self, state: str | None = None, kind: str | None = None, name: str | None = None,
                  page_size: int = 100) -> Iterator[dict]:
        """Every matching job, newest first, following next_cursor page after page."""
        cursor = None
        while True:
            page = self.jobs_page(state, kind, name, page_size, cursor)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def cancel(self, job_id: int) -> dict:
        """POST /jobs/{id}/cancel (idempotent): the job, cancelled or cancelling."""
        return self._json(self.http.post(f"/jobs/{job_id}/cancel"))

    def retry(self, job_id: int) -> dict:
        """POST /jobs/{id}/retry: a failed or cancelled job queued again."""
        return self._json(self.http.post(f"/jobs/{job_id}/retry"))

    def delete(self, job_id: int) -> None:
        """DELETE /jobs/{id}: a finished job's rows and run directory."""
        self._check(self.http.delete(f"/jobs/{job_id}"))

    def metrics(self, job_id: int, names: list[str] | None = None, since_step: int = 0,
                max_points: int | None = None) -> dict:
        """GET /jobs/{id}/metrics: {job_id, series: [{name, total_points, points}]}."""
        params: dict = {"since_step": since_step}
        if names:
            params["names"] = ",".join(names)
        if max_points is not None:
            params["max_points"] = max_points
        return self._json(self._get(f"/jobs/{job_id}/metrics", params=params))

    def logs(self, job_id: int, attempt: int | None = None, offset: int = 0,
             limit: int | None = None) -> dict:
        """GET /jobs/{id}/logs: a byte window {attempt, offset, next_offset, size, eof, text}."""
        params: dict = {"offset": offset}
        if attempt is not None:
            params["attempt"] = attempt
        if limit is not None:
            params["limit"] = limit
        return self._json(self._get(f"/jobs/{job_id}/logs", params=params))

    def events(self, job_id: int, last_event_id: int | None = None,
               reconnects: int = GET_RETRIES) -> Iterator[SseEvent]:
        """The job's Server-Sent Events as they come; ends when the server ends the stream
        (the job finished). A dropped connection is resumed with Last-Event-ID (up to
        `reconnects` times in a row), so no event is lost or repeated."""
        failures = 0
        while True:
            headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
            try:
                with self.http.stream("GET", f"/jobs/{job_id}/events", headers=headers,
                                      timeout=httpx.Timeout(self.http.timeout.connect or 30,
                                                            read=None)) as response:
                    self._check(response)
                    for event in parse_sse(response.iter_lines()):
                        failures = 0
                        if event.id is not None:
                            last_event_id = event.id
                        yield event
                return
            except CONNECTION_LOST:
                failures += 1
                if failures > reconnects:
                    raise
                time.sleep(RETRY_BACKOFF_S * 2 ** (failures - 1))

    def wait(self, job_id: int, timeout_s: float | None = None, poll_s: float = 1.0) -> dict:
        """Poll until the job has finished; TimeoutError after timeout_s."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if job["state"] in FINISHED_STATES:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout_s:.0f} s")
            time.sleep(poll_s)

    # -- checkpoints
    def checkpoints(self, job_id: int) -> list[dict]:
        """GET /jobs/{id}/checkpoints: [{name, step, size_bytes, sha256, available, url}] by step."""
        return self._json(self._get(f"/jobs/{job_id}/checkpoints"))["checkpoints"]

    def download_checkpoint(self, job_id: int, name: str = "latest",
                            path: str | Path | None = None) -> Path:
        """Download a checkpoint ("latest": the newest available one) to `path` (default: its
        name in the current directory; a directory: the name inside it). A partial file
        already at `path` is resumed with a Range request. The result's sha256 is checked
        against the X-Checksum-Sha256 header: a mismatch deletes the file and raises
        ChecksumError. Returns the path written."""
        if name == "latest":
            available = [c for c in self.checkpoints(job_id) if c.get("available", True)]
            if not available:
                raise FileNotFoundError(f"job {job_id} has no checkpoint available for download")
            name = available[-1]["name"]
        target = Path(path) if path is not None else Path(name)
        if target.is_dir():
            target = target / name
        have = target.stat().st_size if target.is_file() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        with self.http.stream("GET", f"/jobs/{job_id}/checkpoints/{name}", headers=headers) as response:
            if response.status_code == 416 and have:
                # Already whole (or longer than the file): check what we have below.
                response.read()
                expected = response.headers.get("X-Checksum-Sha256")
                if expected is None:
                    expected = self._checkpoint_sha256(job_id, name)
            else:
                self._check(response)
                expected = response.headers.get("X-Checksum-Sha256")
                mode = "ab" if response.status_code == 206 else "wb"
                with open(target, mode) as f:
                    for chunk in response.iter_bytes(1 << 20):
                        f.write(chunk)
        digest = sha256_of(target)
        if expected and digest != expected:
            target.unlink(missing_ok=True)
            raise ChecksumError(f"{target}: sha256 {digest} is not the server's {expected}; "
                                "the file was deleted, download it again")
        return target

    def _checkpoint_sha256(self, job_id: int, name: str) -> str | None:
        for c in self.checkpoints(job_id):
            if c["name"] == name:
                return c["sha256"]
        return None

    # -- predict jobs: masklets and overlays
    def predictions(self, job_id: int, offset: int = 0, limit: int = 50) -> dict:
        """GET /jobs/{id}/predictions: one page {video, frames, width, height, fps, total,
        offset, limit, masklets: [{id, phrase, score, segmentations}]}."""
        return self._json(self._get(f"/jobs/{job_id}/predictions",
                                    params={"offset": offset, "limit": limit}))

    def overlays(self, job_id: int) -> list[dict]:
        """GET /jobs/{id}/overlays: [{name, url, size_bytes}] (the .mp4 and the .png sheet)."""
        return self._json(self._get(f"/jobs/{job_id}/overlays"))["overlays"]

    def download_overlay(self, job_id: int, name: str, path: str | Path | None = None) -> Path:
        """Download one overlay file to `path` (default: its name in the current directory;
        a directory: the name inside it), through a partial file renamed when complete.
        Returns the path written."""
        target = Path(path) if path is not None else Path(name)
        if target.is_dir():
            target = target / name
        partial = target.with_name(target.name + ".part")
        with self.http.stream("GET", f"/jobs/{job_id}/overlays/{name}") as response:
            self._check(response)
            with open(partial, "wb") as f:
                for chunk in response.iter_bytes(1 << 20):
                    f.write(chunk)
        partial.replace(target)
        return target

    # -- service
    def health(self) -> dict:
        """GET /healthz: {"status": "ok"} when the API process is up."""
        return self._json(self._get("/healthz"))

    def ready(self) -> dict:
        """GET /readyz: {database, broker}; ApiError (503) naming what is down."""
        return self._json(self._get("/readyz"))

    def prometheus(self) -> str:
        """GET /metrics (admins only): the Prometheus text."""
        return self._check(self._get("/metrics")).text


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_sse(lines) -> Iterator[SseEvent]:
    """Server-Sent Events from text lines: `id:`, `event:`, `data:` fields, a blank line
    ends an event, `:` lines are comments (keep-alives). `data` is JSON-decoded when it
    parses, else kept as text."""
    event_id: int | None = None
    kind, data = "message", []
    for line in lines:
        line = line.rstrip("\r\n")
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    value: Any = json.loads(text)
                except ValueError:
                    value = text
                yield SseEvent(id=event_id, event=kind, data=value)
            kind, data = "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "id":
            try:
                event_id = int(value)
            except ValueError:
                event_id = None
        elif field == "event":
            kind = value
        elif field == "data":
            data.append(value)
