"""The real server process: `uvicorn api.main:app` configured only by environment
variables, with a live SSE stream that ends when a (simulated) worker finishes the job."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import httpx

import jobstore
from jobstore.tokens import create_token
from tests.api.conftest import free_port, train_body


def test_uvicorn_serves_jobs_and_a_live_event_stream(settings):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAM3V_")}
    env.update(SAM3V_DATABASE_URL=settings.database_url, DATA_ROOT=str(settings.data_root),
               RUNS_ROOT=str(settings.runs_root), SAM3V_BROKER_URL=settings.broker_url,
               SAM3V_GPU_COUNTS="0", SAM3V_SSE_POLL_SECONDS="0.05")
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port),
                               "--log-level", "warning"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
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
    finally:
        server.terminate()
        _, err = server.communicate(timeout=10)
    assert "Traceback" not in err, err
