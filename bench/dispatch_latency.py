"""Dispatch latency and service overhead of the worker, measured on this machine.

    .venv/bin/python bench/dispatch_latency.py [--jobs 20] [--pairs 5] [--steps 20]

1. Dispatch latency: POST /jobs sent -> torchrun process created (its start time in /proc),
   with one idle CPU worker waiting; p50/p95 over --jobs jobs. Each job is cancelled as
   soon as its torchrun exists, so the next one starts from an idle worker again.
2. Service overhead: wall time of the same tiny training run (a) through the service,
   POST until GET /jobs/{id} says succeeded (client polls every 0.1 s), and (b) direct
   `torchrun -m sam3_video.train` on the same config; interleaved pairs (the machine's
   load drifts), reported as the median of the per-pair ratios and differences.

Real processes throughout (redis-server, uvicorn, a Celery worker, torchrun), set up by
the same helper the worker tests use (tests/worker/conftest.py: Stack).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.worker.conftest import Stack, tiny_train, wait_until  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def make_data(root: Path) -> Path:
    data = root / "data"
    for name, seed in (("synthetic", 0), ("synthetic-val", 1)):
        subprocess.run([sys.executable, "-m", "sam3_video.data", "synthetic", str(data / name),
                        "--videos", "2", "--frames", "4", "--seed", str(seed)],
                       check=True, cwd=REPO, capture_output=True)
    return data


def uptime() -> float:
    """Seconds since boot: the clock /proc/<pid>/stat start times use (10 ms ticks).
    psutil.create_time() adds the boot time rounded to a whole second: too coarse here."""
    return float(Path("/proc/uptime").read_text().split()[0])


def started_at_uptime(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime


def torchrun_created(stack: Stack, job_id: int) -> float | None:
    for proc in stack.trainer_processes(job_id):
        if "torch.distributed.run" in " ".join(proc.cmdline()):
            return started_at_uptime(proc.pid)
    return None


def dispatch_latencies(stack: Stack, client, jobs: int) -> list[float]:
    latencies = []
    for _ in range(jobs):
        posted = uptime()
        job_id = client.post("/jobs", json={"kind": "train", "config": tiny_train(max_steps=500)}).json()["id"]
        started = wait_until(lambda: torchrun_created(stack, job_id), 60, "torchrun", interval=0.01)
        latencies.append(started - posted)
        client.post(f"/jobs/{job_id}/cancel")
        stack.wait_state(job_id, ("cancelled",), 60)
        wait_until(lambda: not stack.trainer_processes(job_id), 30, "the job's processes to exit")
    return latencies


def via_service(client, config: dict) -> float:
    start = time.perf_counter()
    job_id = client.post("/jobs", json={"kind": "train", "config": config}).json()["id"]
    state = wait_until(lambda: (s := client.get(f"/jobs/{job_id}").json()["state"])
                       in ("succeeded", "failed", "cancelled") and s, 600, "the job", interval=0.1)
    assert state == "succeeded", state
    return time.perf_counter() - start


def direct(stack: Stack, config: dict, run_dir: Path) -> float:
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(config))
    env = {**stack.env, "DATA_ROOT": stack.env["SAM3V_DATA_ROOT"], "RUNS_ROOT": str(run_dir.parent),
           "CUDA_VISIBLE_DEVICES": ""}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
                    "--nproc_per_node=1", "-m", "sam3_video.train", "--config",
                    str(run_dir / "config.json"), "--run-dir", str(run_dir)],
                   check=True, env=env, cwd=run_dir, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20, help="jobs for the dispatch latency")
    parser.add_argument("--pairs", type=int, default=5, help="service/direct run pairs")
    parser.add_argument("--steps", type=int, default=20, help="training steps per overhead run")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp:
        root = Path(tmp)
        (root / "stack").mkdir()
        stack = Stack(root / "stack", make_data(root))
        try:
            stack.start_worker("bench-worker")
            stack.start_api()
            with stack.http() as client:
                lat = dispatch_latencies(stack, client, args.jobs)
                config = tiny_train(max_steps=args.steps, checkpoint_every=10)
                service, plain = [], []
                for i in range(args.pairs):  # interleaved, so load drifts hit both alike
                    service.append(via_service(client, config))
                    plain.append(direct(stack, config, root / f"direct-{i}"))
        finally:
            stack.close()

    print(f"dispatch latency (POST -> torchrun started), {len(lat)} jobs: "
          f"p50 {percentile(lat, 0.5):.3f} s, p95 {percentile(lat, 0.95):.3f} s, "
          f"min {min(lat):.3f} s, max {max(lat):.3f} s")
    print(f"tiny training run, {args.steps} steps, {args.pairs} interleaved pairs:")
    print(f"  via service: {', '.join(f'{t:.1f}' for t in service)} s (median {statistics.median(service):.1f})")
    print(f"  direct torchrun: {', '.join(f'{t:.1f}' for t in plain)} s (median {statistics.median(plain):.1f})")
    ratios = [a / b for a, b in zip(service, plain)]
    extra = [a - b for a, b in zip(service, plain)]
    print(f"  service / direct per pair: {', '.join(f'{r:.3f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.3f}")
    print(f"  service - direct per pair: median {statistics.median(extra):+.2f} s")


if __name__ == "__main__":
    main()
