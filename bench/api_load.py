"""API load benchmark: GET /jobs/{id} polling and POST /jobs throughput.

Starts a real redis-server and `uvicorn api.main:app` (one process, SQLite in a temp
home, a small synthetic native dataset that the API validates before the first job on
it), then measures, side by side in one run:
  1. 64 concurrent clients polling GET /jobs/{id} of a running job, alone;
  2. the same while another process appends metrics + progress for that job, as a
     worker does (so readers and the writer contend on the database);
  3. POST /jobs with a few concurrent clients (validation, insert, enqueue).

    .venv/bin/python bench/api_load.py [--seconds 10] [--clients 64] [--posts 200]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from sam3_video.data import write_synthetic

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable

APPENDER = """
import sys, time
from jobstore.jobs import add_metrics, record_progress
job_id, interval = int(sys.argv[1]), float(sys.argv[2])
step = 0
while True:
    now = time.time()
    rows = []
    for _ in range(5):  # a worker ingests metrics.jsonl in small batches
        step += 1
        rows += [("loss", step, 1.0 / step, now), ("lr", step, 1e-4, now),
                 ("frames_per_s", step, 40.0, now), ("loss_mask", step, 0.5, now)]
    add_metrics(job_id, 1, rows)
    record_progress(job_id, step, 10**7, None)  # the largest max_steps a config allows
    time.sleep(interval)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def post_job(base: str, headers: dict, body: dict, timeout: float = 120) -> dict:
    """POST /jobs, waiting out the 409 + Retry-After the API answers while the dataset's
    first validation runs off the request path."""
    deadline = time.time() + timeout
    while True:
        r = httpx.post(base + "/jobs", headers=headers, json=body, timeout=30)
        if r.status_code == 201:
            return r.json()
        if r.status_code != 409 or "Retry-After" not in r.headers or time.time() > deadline:
            raise RuntimeError(f"POST /jobs: {r.status_code} {r.text}")
        time.sleep(float(r.headers["Retry-After"]))


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process: its CPU cost (far less load-sensitive than wall time)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(server_pid: int, coro) -> dict:
    """Run one phase; add the server's CPU milliseconds per request."""
    before = cpu_seconds(server_pid)
    result = asyncio.run(coro)
    result["server_cpu_ms_per_req"] = 1000 * (cpu_seconds(server_pid) - before) / max(1, result["requests"])
    return result


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def poll(base: str, headers: dict, job_id: int, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def one_client(client: httpx.AsyncClient):
        nonlocal errors
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                r = await client.get(f"/jobs/{job_id}", headers=headers)
                errors += r.status_code != 200
            except httpx.TransportError:  # counted, not fatal: we want the whole picture
                errors += 1
            latencies.append(time.perf_counter() - t0)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        start = time.perf_counter()
        await asyncio.gather(*(one_client(client) for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return {"requests": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
            "p50_ms": 1000 * statistics.median(latencies), "p99_ms": 1000 * percentile(latencies, 0.99)}


async def posts(base: str, headers: dict, total: int, clients: int) -> dict:
    body = {"kind": "train", "config": {"data": {"train": "ds"}, "max_steps": 10, "gpus": 0}}
    latencies: list[float] = []
    errors = 0
    queue = list(range(total))

    async def one_client(client: httpx.AsyncClient):
        nonlocal errors
        while queue:
            queue.pop()
            t0 = time.perf_counter()
            try:
                r = await client.post("/jobs", json=body, headers=headers)
                errors += r.status_code != 201
            except httpx.TransportError:
                errors += 1
            latencies.append(time.perf_counter() - t0)

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        start = time.perf_counter()
        await asyncio.gather(*(one_client(client) for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return {"requests": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
            "p50_ms": 1000 * statistics.median(latencies), "p99_ms": 1000 * percentile(latencies, 0.99)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of each polling phase")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--posts", type=int, default=200)
    ap.add_argument("--post-clients", type=int, default=8)
    ap.add_argument("--append-interval", type=float, default=0.05,
                    help="seconds between the writer's batches (5 steps x 4 metrics each)")
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="sam3v-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        write_synthetic(home / "data" / "ds", videos=4, frames=4, height=32, width=32)
        redis_port, api_port = free_port(), free_port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(redis_port), "--save", "",
                                       "--appendonly", "no", "--dir", str(home)],
                                      stdout=subprocess.DEVNULL))
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("SAM3V_")},
               "SAM3V_HOME": str(home), "SAM3V_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
               "SAM3V_GPU_COUNTS": "0", "PYTHONPATH": str(REPO),
               # No worker runs: every POSTed job stays queued, so lift the per-user limit.
               "SAM3V_MAX_ACTIVE_JOBS_PER_USER": str(10**6)}
        setup = ("from jobstore.settings import get_settings; from jobstore.migrate import migrate; "
                 "from jobstore.tokens import create_token; s = get_settings(); migrate(s); "
                 "print(create_token(s, 'bench', False))")
        token = subprocess.run([PY, "-c", setup], env=env, cwd=REPO, check=True,
                               capture_output=True, text=True).stdout.strip()
        headers = {"Authorization": f"Bearer {token}"}
        server = subprocess.Popen([PY, "-m", "uvicorn", "api.main:app", "--port", str(api_port),
                                   "--log-level", "warning", "--no-access-log"], env=env, cwd=REPO)
        procs.append(server)
        base = f"http://127.0.0.1:{api_port}"
        wait_http(base + "/healthz")

        job_id = post_job(base, headers, {
            "kind": "train", "config": {"data": {"train": "ds"}, "max_steps": 10**7, "gpus": 0}})["id"]
        claimed = subprocess.run([PY, "-c", "from jobstore.jobs import claim_job; "
                                  f"print(claim_job({job_id}, 'bench', 3600) is not None)"],
                                 env=env, cwd=REPO, check=True, capture_output=True, text=True)
        if claimed.stdout.strip() != "True":
            raise RuntimeError(f"job {job_id} could not be claimed: {claimed.stdout}{claimed.stderr}")
        asyncio.run(poll(base, headers, job_id, args.clients, 1.0))  # warm up

        load_before = os.getloadavg()[0]
        idle = measured(server.pid, poll(base, headers, job_id, args.clients, args.seconds))
        appender = subprocess.Popen([PY, "-c", APPENDER, str(job_id), str(args.append_interval)],
                                    env=env, cwd=REPO)
        procs.append(appender)
        time.sleep(1.0)
        busy = measured(server.pid, poll(base, headers, job_id, args.clients, args.seconds))
        appender.terminate()
        appender.wait()
        detail = httpx.get(f"{base}/jobs/{job_id}", headers=headers).json()
        post = measured(server.pid, posts(base, headers, args.posts, args.post_clients))

        result = {"poll_idle": idle, "poll_with_writer": busy,
                  "writer_steps_ingested": detail["progress"]["step"],
                  "poll_ratio_with_writer_vs_idle": busy["rps"] / idle["rps"], "post": post,
                  "cpus": os.cpu_count(), "load_average_1m_at_start": load_before}
        print(json.dumps(result, indent=2))
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
