"""The real server process: `uvicorn api.main:app` configured only by environment
variables, with a live SSE stream that ends when a (simulated) worker finishes the job."""
from __future__ import annotations

import json
import threading
import time

import httpx

import jobstore
from jobstore.tokens import create_token
from tests.api.conftest import train_body
from tests.support.api_server import uvicorn_app


def test_uvicorn_serves_jobs_and_a_live_event_stream(settings):
    with uvicorn_app(settings, SAM3V_GPU_COUNTS="0", SAM3V_SSE_POLL_SECONDS="0.05") as base:
        jobstore.migrate(settings)
        headers = {"Authorization": f"Bearer {create_token(settings, 'dora')}"}
        created = httpx.post(base + "/jobs", json=train_body(), headers=headers)
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        engine = jobstore.get_engine(settings)

        def worker():
            time.sleep(0.3)
            jobstore.claim_job(job_id, "w", 60, engine=engine)
            jobstore.add_metrics(job_id, 1, [("loss", 1, 0.9, time.time())], engine=engine)
            time.sleep(0.3)
            jobstore.finish_job(job_id, 1, "succeeded", None, None, engine=engine)
        threading.Thread(target=worker).start()

        states = []
        with httpx.stream("GET", f"{base}/jobs/{job_id}/events", headers=headers, timeout=30) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data: "):
                    data = json.loads(line[6:])
                    if "state" in data:
                        states.append(data["state"])
        assert states == ["queued", "running", "succeeded"]
        assert httpx.get(f"{base}/jobs/{job_id}", headers=headers).json()["last_metrics"]["loss"]["value"] == 0.9
