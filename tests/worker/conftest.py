"""Real processes for the worker tests: redis-server, Celery workers, torchrun, the API (python -m api).

`stack` gives one isolated service per test: its own Redis port, SQLite file, run and
data directories. Jobs are created the way POST /jobs creates them (jobstore.create_job +
jobstore.broker.enqueue) unless a test goes through HTTP on purpose (`stack.start_api()`).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

import jobstore
from jobstore import broker
from jobstore.tokens import create_token
from jobstore.queues import queue_name
from jobstore.settings import Settings

from tests.support.procs import RedisServer, free_port, kill_tree, wait_until  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable

# A tiny detect job: ~0.2 s per step on a CPU; the start-up (imports) dominates.
TINY_TRAIN = {
    "task": "detect", "model": {"preset": "tiny"},
    "data": {"train": "synthetic", "frames_per_clip": 2, "batch_size_per_gpu": 1,
             "image_size": 112},
    "max_steps": 6, "checkpoint_every": 2, "keep_last": 2, "gpus": 0,
}


def tiny_train(**overrides) -> dict:
    config = json.loads(json.dumps(TINY_TRAIN))
    config.update(overrides)
    return config



class Stack:
    def __init__(self, root: Path, data_root: Path):
        self.root = root
        self.runs_root = root / "runs"
        self.runs_root.mkdir()
        self.logs = root / "logs"
        self.logs.mkdir()
        self.redis = RedisServer(root / "redis")
        self.redis.start()
        self.db_url = f"sqlite:///{root / 'sam3v.db'}"
        self.env = {
            **os.environ,
            "SAM3V_DATABASE_URL": self.db_url, "SAM3V_DATA_ROOT": str(data_root),
            "SAM3V_RUNS_ROOT": str(self.runs_root), "SAM3V_BROKER_URL": self.redis.url,
            "SAM3V_GPU_COUNTS": "0,1", "SAM3V_LEASE_SECONDS": "4", "SAM3V_MAX_ATTEMPTS": "3",
            "SAM3V_CANCEL_GRACE_S": "5", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
        for plain in ("DATA_ROOT", "RUNS_ROOT", "DATABASE_URL"):
            self.env.pop(plain, None)  # the SAM3V_ names above must win
        self.settings = Settings(database_url=self.db_url, data_root=data_root,
                                 runs_root=self.runs_root, broker_url=self.redis.url,
                                 gpu_counts=[0, 1], lease_seconds=4)
        self.engine = jobstore.create_db_engine(self.db_url)
        jobstore.migrate(self.settings, engine=self.engine)
        self.token = create_token(self.engine, "tester", True)
        with jobstore.session_scope(self.engine) as s:
            self.owner_id = s.query(jobstore.User).filter_by(name="tester").one().id
        self.workers: list[subprocess.Popen] = []
        self.api: subprocess.Popen | None = None
        self.api_port = free_port()

    # -- processes
    def start_worker(self, name: str, gpus: str = "", queue: str | None = None,
                     **env) -> subprocess.Popen:
        """A Celery worker; `queue` overrides the one its GPU set implies."""
        worker_env = {**self.env, "SAM3V_WORKER_GPUS": gpus, "SAM3V_WORKER_ID": name, **env}
        if queue:
            worker_env["SAM3V_WORKER_QUEUE"] = queue
        queue = queue or queue_name(len([g for g in gpus.split(",") if g.strip()]))
        proc = subprocess.Popen(
            [PY, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", queue,
             "--concurrency", "1", "--hostname", f"{name}@%h", "--loglevel", "INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=REPO, env=worker_env, start_new_session=True,
            stdout=open(self.logs / f"{name}.log", "ab"), stderr=subprocess.STDOUT)
        self.workers.append(proc)
        return proc

    def worker_log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def start_api(self) -> None:
        self.api = subprocess.Popen(
            [PY, "-m", "api", "--host", "127.0.0.1", "--port", str(self.api_port)],
            cwd=REPO, env=self.env, start_new_session=True,
            stdout=open(self.logs / "api.log", "ab"), stderr=subprocess.STDOUT)
        wait_until(self._api_up, 60, "the API to answer /healthz")

    def stop_api(self) -> None:
        self.api.send_signal(signal.SIGTERM)
        self.api.wait(timeout=20)

    def _api_up(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=30,
                            headers={"Authorization": f"Bearer {self.token}"})

    # -- jobs
    def submit(self, config: dict, kind: str = "train", queue: str | None = None,
               priority: int = 0) -> int:
        """What POST /jobs does after validation: a queued row, then the broker message
        (to `queue` instead of the GPU count's queue if given)."""
        gpus = config["gpus"]
        with jobstore.session_scope(self.engine) as s:
            job = jobstore.create_job(s, owner_id=self.owner_id, kind=kind, name=None, config=config,
                                   gpus=gpus, queue=queue or queue_name(gpus), priority=priority,
                                   max_attempts=3)
        if queue:
            broker.celery_client(self.settings).send_task(broker.TASK_NAME, args=[job.id], queue=queue)
        else:
            assert broker.enqueue(self.settings, job.id, gpus, priority=priority, engine=self.engine)
        return job.id

    def job(self, job_id: int) -> jobstore.Job:
        return jobstore.get_job(job_id, engine=self.engine)

    def wait_state(self, job_id: int, states: tuple[str, ...], timeout: float) -> jobstore.Job:
        return wait_until(lambda: (j := self.job(job_id)).state in states and j, timeout,
                          f"job {job_id} to reach {states}")

    def run_dir(self, job_id: int) -> Path:
        return self.runs_root / f"job-{job_id}"

    def trainer_processes(self, job_id: int) -> list[psutil.Process]:
        """Every live process whose command line names this job's run directory."""
        marker = str(self.run_dir(job_id))
        found = []
        for p in psutil.process_iter(["cmdline", "status"]):
            try:
                if p.info["status"] != psutil.STATUS_ZOMBIE and marker in " ".join(p.info["cmdline"] or []):
                    found.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return found

    def close(self) -> None:
        for proc in [*self.workers, *([self.api] if self.api else [])]:
            if proc.poll() is None:
                kill_tree(proc)
        for job_dir in self.runs_root.glob("job-*"):  # trainers orphaned by a killed worker
            for p in self.trainer_processes(int(job_dir.name.split("-")[1])):
                p.kill()
        self.redis.close()
        self.engine.dispose()


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for name, seed in (("synthetic", 0), ("synthetic-val", 1)):
        subprocess.run([PY, "-m", "sam3_video.data", "synthetic", str(root / name),
                        "--videos", "2", "--frames", "4", "--seed", str(seed)],
                       check=True, cwd=REPO, capture_output=True)
    return root


@pytest.fixture
def stack(tmp_path, data_root):
    s = Stack(tmp_path, data_root)
    yield s
    s.close()
    if os.environ.get("SAM3V_KEEP_TEST_LOGS"):
        shutil.copytree(s.logs, Path(os.environ["SAM3V_KEEP_TEST_LOGS"]) / tmp_path.name,
                        dirs_exist_ok=True)
