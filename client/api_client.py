"""A small httpx client for the job API (the CLI and tests use it)."""
from __future__ import annotations

import time

import httpx

FINISHED_STATES = ("succeeded", "failed", "cancelled")


class ApiError(RuntimeError):
    """The API answered with an error; the message carries its status and body."""

    def __init__(self, response: httpx.Response):
        self.status_code = response.status_code
        try:
            self.body = response.json()
        except ValueError:
            self.body = response.text
        super().__init__(f"HTTP {response.status_code} from {response.request.method} "
                         f"{response.request.url.path}: {self.body}")


class Sam3vClient:
    def __init__(self, url: str, token: str | None, timeout_s: float = 30.0):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _json(self, response: httpx.Response) -> dict:
        if response.is_error:
            raise ApiError(response)
        return response.json()

    def submit(self, kind: str, config: dict, gpus: int | None = None, name: str | None = None) -> dict:
        body: dict = {"kind": kind, "config": config}
        if gpus is not None:
            body["gpus"] = gpus
        if name is not None:
            body["name"] = name
        return self._json(self.http.post("/jobs", json=body))

    def job(self, job_id: int) -> dict:
        return self._json(self.http.get(f"/jobs/{job_id}"))

    def jobs(self) -> list[dict]:
        return self._json(self.http.get("/jobs"))["items"]

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
