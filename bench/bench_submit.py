"""POST /jobs latency on a big validated dataset against a small one.

Since datasets are validated once per version (api/datasets.py), a POST on a dataset
already validated costs a version check (annotations.json's digest, memoised per file
version, and one scandir of JPEGImages/), not a validation. Side by side in one run, on
the real app (TestClient) with a real redis-server and SQLite:

    .venv/bin/python bench/bench_submit.py [--videos 2000] [--frames 4] [--posts 100]

prints the first (validating) POST's time, p50/p95 of the later POSTs on each dataset,
and their ratio (big / small): the figure to report; near 1 means the cost does not grow
with the dataset.
"""
from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from api.main import create_app
from jobstore.settings import Settings
from jobstore.tokens import create_token
from sam3_video.data import write_synthetic


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def timed_posts(client: TestClient, headers: dict, dataset: str, count: int) -> dict:
    body = {"kind": "train", "config": {"data": {"train": dataset}, "max_steps": 1, "gpus": 0}}
    t0 = time.perf_counter()
    first = client.post("/jobs", json=body, headers=headers)
    first_s = time.perf_counter() - t0
    assert first.status_code == 201, first.text
    latencies = []
    for _ in range(count):
        t0 = time.perf_counter()
        r = client.post("/jobs", json=body, headers=headers)
        latencies.append(time.perf_counter() - t0)
        assert r.status_code == 201, r.text
    return {"first_post_s": round(first_s, 3),
            "p50_ms": round(1000 * statistics.median(latencies), 2),
            "p95_ms": round(1000 * percentile(latencies, 0.95), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=2000)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--posts", type=int, default=100)
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="sam3v-bench-submit-"))
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--save", "",
                              "--appendonly", "no", "--dir", str(home)], stdout=subprocess.DEVNULL)
    try:
        t0 = time.perf_counter()
        write_synthetic(home / "data" / "big", videos=args.videos, frames=args.frames,
                        height=32, width=32)
        write_synthetic(home / "data" / "small", videos=10, frames=args.frames, height=32, width=32)
        written_s = time.perf_counter() - t0
        settings = Settings(home=home, broker_url=f"redis://127.0.0.1:{port}/0", gpu_counts=[0],
                            max_active_jobs_per_user=10**6, dataset_validation_wait_s=600)
        with TestClient(create_app(settings)) as client:
            headers = {"Authorization": f"Bearer {create_token(settings, 'bench', False)}"}
            small = timed_posts(client, headers, "small", args.posts)
            big = timed_posts(client, headers, "big", args.posts)
        print(json.dumps({"videos": args.videos, "frames": args.frames, "posts": args.posts,
                          "datasets_written_s": round(written_s, 1), "small": small, "big": big,
                          "p50_ratio_big_vs_small": round(big["p50_ms"] / small["p50_ms"], 2),
                          "p95_ratio_big_vs_small": round(big["p95_ms"] / small["p95_ms"], 2)},
                         indent=2))
    finally:
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
