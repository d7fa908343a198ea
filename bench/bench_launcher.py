"""Local stack timings: `sam3v up` to ready, cold (first start: migrations, token, demo
datasets) vs warm (restart of the same home), and Ctrl-C to exit, idle vs with a training
job running (the worker stops the trainer, which checkpoints, and requeues the job).

    .venv/bin/python bench/bench_launcher.py [--rounds 2]

All measured side by side in one run on fresh temporary homes.
"""
from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(home: Path) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "client.cli", "up", "--home", str(home),
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url_file = home / "url"
    while not (url_file.is_file() and url_file.read_text().strip() == url):
        if proc.poll() is not None:
            raise SystemExit(f"sam3v up exited with {proc.returncode}; see {home}/logs")
        time.sleep(0.05)
    return proc, url, time.perf_counter() - t0


def stop(proc: subprocess.Popen) -> float:
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=300)
    return time.perf_counter() - t0


def start_training(home: Path, url: str) -> None:
    """Submit a long job and wait until its trainer has logged a step."""
    config = json.loads((ROOT / "examples" / "train_tiny.json").read_text())
    config["data"].pop("val", None)
    config.update(max_steps=1000, checkpoint_every=1000)
    token = (home / "token").read_text().strip()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        job = c.post("/jobs", json={"kind": "train", "config": config}).raise_for_status().json()
        metrics = home / "runs" / f"job-{job['id']}" / "metrics.jsonl"
        while not (metrics.is_file() and metrics.read_text().strip()):
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cold, warm, stop_idle, stop_busy = [], [], [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            proc, _, t = start(home)
            cold.append(t)
            stop_idle.append(stop(proc))
            proc, url, t = start(home)
            warm.append(t)
            start_training(home, url)
            stop_busy.append(stop(proc))
    med = statistics.median
    print(f"rounds: {args.rounds} (median seconds)")
    print(f"start to ready, cold (first start, demo data):  {med(cold):6.2f}")
    print(f"start to ready, warm (restart, same home):      {med(warm):6.2f}")
    print(f"  ratio cold / warm: {med(cold) / med(warm):.2f}x")
    print(f"Ctrl-C to exit, idle:                           {med(stop_idle):6.2f}")
    print(f"Ctrl-C to exit, training job checkpointing:     {med(stop_busy):6.2f}")
    print(f"  ratio busy / idle: {med(stop_busy) / med(stop_idle):.2f}x")


if __name__ == "__main__":
    main()
