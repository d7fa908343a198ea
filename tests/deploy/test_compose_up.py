"""The Docker deployment end to end, on a machine without GPUs or registry access:
deploy/image.sh builds sam3v:latest, then docker-compose.yml + deploy/compose.cpu.yml run
redis, the api and a CPU worker as real containers; a job goes in over HTTP on 127.0.0.1.

Needs Docker (image.sh installs and starts it where it can, as root on Debian). Without it
the test is skipped, except under CI=true, where it fails: CI must run it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from sam3_video.data.synthetic import write_synthetic
from tests.support.procs import free_port

ROOT = Path(__file__).resolve().parents[2]
FINISHED = {"succeeded", "failed", "cancelled"}
SERVICES = {"redis", "api", "worker-cpu"}

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(3600)]


def require_docker() -> None:
    """Docker can run here, or image.sh can install it (root with apt); else skip, or fail
    under CI."""
    if shutil.which("docker") or (os.geteuid() == 0 and shutil.which("apt-get")):
        return
    reason = "docker is not installed and cannot be installed here (needs root and apt-get)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


def compose_argv() -> list[str]:
    """docker-compose (1.29, Debian's) where installed, else Compose v2's `docker compose`;
    SAM3V_TEST_COMPOSE="docker compose" picks one."""
    chosen = os.environ.get("SAM3V_TEST_COMPOSE")
    if chosen:
        return chosen.split()
    return ["docker-compose"] if shutil.which("docker-compose") else ["docker", "compose"]


class Stack:
    """One compose project in its own directory (compose files + .env), torn down with -v."""

    def __init__(self, project_dir: Path, name: str, port: int):
        self.dir, self.name, self.port = project_dir, name, port
        self.url = f"http://127.0.0.1:{port}"
        self.base = [*compose_argv(), "-p", name,
                     "-f", "docker-compose.yml", "-f", "deploy/compose.cpu.yml"]

    def compose(self, *args: str, timeout_s: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.base, *args], cwd=self.dir, capture_output=True, text=True,
                                timeout=timeout_s)
        if check:
            assert result.returncode == 0, f"compose {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    def health(self) -> dict[str, str]:
        """service -> health status of its (one) container."""
        ids = self.compose("ps", "-q").stdout.split()
        out = {}
        for cid in ids:
            fmt = '{{index .Config.Labels "com.docker.compose.service"}} ' \
                  '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}'
            name, status = subprocess.run(["docker", "inspect", "--format", fmt, cid], text=True,
                                          capture_output=True, check=True).stdout.split()
            out[name] = status
        return out

    def wait_healthy(self, timeout_s: float = 600) -> float:
        start = time.monotonic()
        health = {}
        while time.monotonic() - start < timeout_s:
            health = self.health()
            if set(health) == SERVICES and all(s == "healthy" for s in health.values()):
                return time.monotonic() - start
            assert "unhealthy" not in health.values(), f"{health}\n{self.logs()}"
            time.sleep(3)
        raise AssertionError(f"not healthy in {timeout_s} s: {health}\n{self.logs()}")

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "60", check=False, timeout_s=120).stdout[-8000:]

    def users(self) -> dict[str, str]:
        """service -> the real user id of its PID 1 (tini where init: true, else the server)."""
        read = "print(open('/proc/1/status').read().split('Uid:')[1].split()[0])"
        return {s: self.compose("exec", "-T", s, "python", "-c", read).stdout.strip() for s in SERVICES}


@pytest.fixture
def stack(tmp_path):
    require_docker()
    built = subprocess.run([str(ROOT / "deploy" / "image.sh")], cwd=ROOT, capture_output=True,
                           text=True, timeout=2700)
    print(built.stdout[-3000:], built.stderr[-3000:], file=sys.stderr)
    assert built.returncode == 0, f"deploy/image.sh failed:\n{built.stdout[-6000:]}\n{built.stderr[-6000:]}"

    project = tmp_path / "project"
    (project / "deploy").mkdir(parents=True)
    shutil.copy(ROOT / "docker-compose.yml", project)
    shutil.copy(ROOT / "deploy" / "compose.cpu.yml", project / "deploy")
    data, weights = tmp_path / "data", tmp_path / "weights"
    write_synthetic(data / "synthetic", videos=8, frames=8, seed=0)
    write_synthetic(data / "synthetic-val", videos=4, frames=8, seed=1)
    (data / "weights").mkdir()        # the mount point of the weights mount, inside a read-only one
    weights.mkdir()
    for path in [tmp_path, data, weights, *data.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)   # the containers run as uid 1000
    port = free_port()
    (project / ".env").write_text((ROOT / ".env.example").read_text() + "".join(
        f"{k}={v}\n" for k, v in {
            "SAM3V_HOST_DATA_DIR": data, "SAM3V_HOST_WEIGHTS_DIR": weights,
            "SAM3V_API_PORT": port, "SAM3V_WORKER_MEM_LIMIT": "8g",
            # The machine is shared: two threads per trainer.
            "OMP_NUM_THREADS": 2}.items()))
    stack = Stack(project, f"sam3vtest{uuid.uuid4().hex[:10]}", port)
    try:
        yield stack
    finally:
        print(stack.logs(), file=sys.stderr)
        stack.compose("down", "-v", "--remove-orphans", "-t", "60", check=False)


def tiny_config(max_steps: int) -> dict:
    """examples/train_tiny.json with a few steps and a checkpoint every 2 (as
    tests/deploy/test_launcher.py: the 200 steps and evaluations as committed take ~10 min
    on a shared 2-core CPU; this test is about the deployment)."""
    config = json.loads((ROOT / "examples" / "train_tiny.json").read_text())
    config.update(max_steps=max_steps, checkpoint_every=2)
    config["schedule"]["warmup_steps"] = 1
    config["data"].pop("val", None)
    return config


def wait_for(client: httpx.Client, job_id: int, done, timeout_s: float, stack: Stack) -> dict:
    deadline = time.monotonic() + timeout_s
    job = {}
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").raise_for_status().json()
        if done(job):
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id}: {json.dumps(job)[:2000]}\n{stack.logs()}")


def steps_logged(client: httpx.Client, job_id: int) -> int:
    series = client.get(f"/jobs/{job_id}/metrics").raise_for_status().json()["series"]
    return max((p["step"] for s in series for p in s["points"]), default=0)


def test_image_and_compose_up_run_jobs_that_survive_restarts(stack):
    started = time.monotonic()
    stack.compose("up", "-d", "--no-build")
    print(f"up -> healthy: {stack.wait_healthy():.0f} s", file=sys.stderr)
    assert set(stack.users().values()) == {"1000"}                 # nothing runs as root
    ports = stack.compose("port", "api", "8000").stdout.strip()
    assert ports == f"127.0.0.1:{stack.port}", ports               # published on loopback only

    token = stack.compose("exec", "-T", "api", "sam3v", "tokens", "create", "--user", "ci",
                          "--admin").stdout.strip()
    assert token.startswith("sam3v_") and "\n" not in token, token
    client = httpx.Client(base_url=stack.url, timeout=30, headers={"Authorization": f"Bearer {token}"})

    # A job end to end: metrics, and a checkpoint downloaded with the sha256 the API names.
    created = client.post("/jobs", json={"kind": "train", "config": tiny_config(4)})
    assert created.status_code == 201, created.text
    first = created.json()["id"]
    job = wait_for(client, first, lambda j: j["state"] in FINISHED, 900, stack)
    assert job["state"] == "succeeded", json.dumps(job, indent=2)
    assert steps_logged(client, first) == 4
    checkpoints = client.get(f"/jobs/{first}/checkpoints").raise_for_status().json()["checkpoints"]
    newest = checkpoints[-1]
    assert newest["step"] == 4 and newest["available"], checkpoints
    download = client.get(newest["url"])
    assert download.status_code == 200 and len(download.content) == newest["size_bytes"]
    assert download.headers["X-Checksum-Sha256"] == newest["sha256"]

    # The worker restarted mid-job (SIGTERM: the trainer checkpoints, the job is requeued)
    # and the job resumes from that checkpoint on the restarted worker.
    second = client.post("/jobs", json={"kind": "train", "config": tiny_config(10)}).raise_for_status().json()["id"]
    wait_for(client, second, lambda j: j["state"] == "running" and steps_logged(client, second) >= 2, 900, stack)
    stack.compose("restart", "-t", "300", "worker-cpu")
    job = wait_for(client, second, lambda j: j["state"] in FINISHED, 900, stack)
    assert job["state"] == "succeeded", json.dumps(job, indent=2)
    assert job["attempt"] == 2, json.dumps(job, indent=2)
    resumed = client.get(f"/jobs/{second}/logs", params={"attempt": 2}).raise_for_status().json()["text"]
    assert "step 10/" in resumed and "step 1/" not in resumed, resumed[-3000:]

    # down (volumes kept) and up: jobs, tokens and checkpoints are still there.
    stack.compose("down", "-t", "60")
    stack.compose("up", "-d", "--no-build")
    stack.wait_healthy()
    jobs = {j["id"]: j["state"] for j in client.get("/jobs").raise_for_status().json()["items"]}
    assert jobs == {first: "succeeded", second: "succeeded"}
    again = client.get(newest["url"])
    assert again.status_code == 200 and again.content == download.content
    print(f"test body: {time.monotonic() - started:.0f} s", file=sys.stderr)
