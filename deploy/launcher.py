"""`sam3v up`: the whole service on one machine, no Docker, no system services.

Starts, as child processes with their logs in DIR/logs: Redis (data in DIR/redis), the
API (uvicorn) and one CPU Celery worker; SQLite holds the jobs. On first start it also
creates the demo datasets and the first admin token. Ctrl-C (SIGINT) or SIGTERM stops the
worker first (its running job checkpoints and goes back to the queue), then the API and
Redis, then sweeps up any process left. Starting again continues where it stopped.
"""
from __future__ import annotations

import argparse
import fcntl
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from deploy.home import DEFAULT_HOME, PRIVATE_UMASK, HomeLayout, settings_env
from deploy.redis_server import (RedisNotFound, free_port, redis_argv, redis_server_binary,
                                 wait_for_redis)
from jobstore.settings import Settings
from worker import proctree

DEMO_DATASETS = {  # name under DATA_ROOT -> arguments of `python -m sam3_video.data synthetic`
    "synthetic": ["--videos", "8", "--frames", "8", "--seed", "0"],
    "synthetic-val": ["--videos", "4", "--frames", "8", "--seed", "1"],
}
READY_TIMEOUT_S = 120.0


def worker_stop_grace_s() -> float:
    """How long the worker may take to stop: its trainer's checkpoint grace plus margin."""
    return Settings().cancel_grace_s + 30.0


class StartError(RuntimeError):
    """The stack could not start; the message says which part and where its log is."""


def log(message: str) -> None:
    print(f"sam3v up: {message}", file=sys.stderr, flush=True)


class LocalStack:
    def __init__(self, home: str | Path, host: str, port: int):
        self.layout = HomeLayout.of(home)
        self.host, self.port = host, port
        self.children: dict[str, proctree.Child] = {}
        self.stop_requested = threading.Event()
        self.lock_file = None  # held while this stack owns the home

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # --- start -------------------------------------------------------------------------
    def lock_home(self) -> None:
        """One stack per home: a second one would share the database and Redis data, and
        its start-up recovery would take over the first one's running jobs."""
        self.layout.make_private()
        lock_file = open(self.layout.root / "launcher.lock", "a+")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            owner = lock_file.read().strip() or "?"
            lock_file.close()
            raise StartError(f"{self.layout.root} is in use by another `sam3v up` (pid {owner})") from None
        lock_file.truncate(0)
        lock_file.write(f"{os.getpid()}\n")
        lock_file.flush()
        self.lock_file = lock_file  # kept open (and locked) until the process exits

    def start(self) -> None:
        self.lock_home()
        # Left by a stack that was killed outright; they would point clients at dead ports.
        self.layout.url_file.unlink(missing_ok=True)
        self.layout.redis_port_file.unlink(missing_ok=True)
        redis_port = self.start_redis()
        os.environ.update(settings_env(self.layout.root, redis_port))
        self.prepare_database()
        self.prepare_demo_data()
        self.start_api()
        self.start_worker()
        self.wait_until_ready()

    def start_redis(self) -> int:
        binary = redis_server_binary()
        for _ in range(3):  # the free port can be taken between probing and binding
            port = free_port()
            child = self.spawn("redis", redis_argv(binary, self.layout.redis, port))
            try:
                wait_for_redis(port, timeout_s=30, alive=child.alive)
            except RuntimeError:
                self.children.pop("redis")
                continue
            self.layout.redis_port_file.write_text(f"{port}\n")
            return port
        raise StartError(f"redis-server did not start; see {self.layout.logs / 'redis.log'}")

    def prepare_database(self) -> None:
        """Migrate, hand interrupted jobs back to the queue, create the first admin token."""
        import jobstore

        settings = Settings()
        jobstore.migrate(settings)
        for line in requeue_interrupted_jobs(settings):
            log(line)
        if not self.layout.token.is_file():
            from jobstore.tokens import create_token

            token = create_token(settings, "admin", True)
            tmp = self.layout.token.with_suffix(".tmp")
            tmp.write_text(token + "\n")
            tmp.chmod(0o600)
            os.replace(tmp, self.layout.token)

    def prepare_demo_data(self) -> None:
        for name, args in DEMO_DATASETS.items():
            target = self.layout.data / name
            if (target / "annotations.json").is_file():
                continue
            log(f"writing the demo dataset {target}")
            # Generate beside the target and rename: an interrupted first start leaves no
            # half-written dataset behind.
            tmp = self.layout.data / f".{name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            argv = [sys.executable, "-m", "sam3_video.data", "synthetic", str(tmp), *args]
            with open(self.layout.logs / "setup.log", "ab") as out:
                done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT)
            if done.returncode != 0:
                raise StartError(f"creating the demo dataset {name} failed; see {self.layout.logs / 'setup.log'}")
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)

    def start_api(self) -> None:
        # python -m api: uvicorn with the connection limits from Settings (api/server.py)
        self.spawn("api", [sys.executable, "-m", "api", "--host", self.host, "--port", str(self.port)])

    def start_worker(self) -> None:
        # SIGTERM is the worker's graceful stop (worker/celery_app.py): its running job's
        # trainer checkpoints within SAM3V_CANCEL_GRACE_S and the job is requeued.
        env = {"SAM3V_WORKER_GPUS": "", "SAM3V_WORKER_ID": "local-cpu"}
        self.spawn("worker", [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
                              "-Q", "cpu", "--concurrency", "1", "-n", "local-cpu@%h",
                              "--loglevel", "INFO"], extra_env=env)

    def spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> proctree.Child:
        env = {**os.environ, **(extra_env or {})}
        child = proctree.start_child(name, argv, env, self.layout.logs / f"{name}.log")
        self.children[name] = child
        return child

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and not self.stop_requested.is_set():
            self.check_children()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        if not self.stop_requested.is_set():
            raise StartError(f"the API was not ready within {READY_TIMEOUT_S:.0f} s; "
                             f"see {self.layout.logs / 'api.log'}")

    def check_children(self) -> None:
        for child in self.children.values():
            if not child.alive():
                raise StartError(f"{child.name} exited with code {child.popen.returncode}; "
                                 f"see {child.log_path}\n{child.log_tail()}")

    # --- run ---------------------------------------------------------------------------
    def run_until_stopped(self) -> None:
        own = {c.pid for c in self.children.values()}
        while not self.stop_requested.wait(0.5):
            self.check_children()
            for child in self.children.values():
                child.remember_descendants()
            proctree.reap_orphans(own)

    # --- stop --------------------------------------------------------------------------
    def stop(self) -> None:
        """Worker first (its running job checkpoints and is requeued), then the API,
        then Redis (which flushes its append-only file), then anything left."""
        known = []
        order = [("worker", worker_stop_grace_s()), ("api", 15.0), ("redis", 15.0)]
        for name, grace in order:
            child = self.children.get(name)
            if child is None:
                continue
            if child.alive():
                log(f"stopping {name}")
            if not proctree.stop_child(child, signal.SIGTERM, grace):
                log(f"{name} did not stop within {grace:.0f} s and was killed")
            known.extend(child.known.values())
        for leftover in proctree.sweep(known):
            log(f"killed leftover process {leftover}")
        if self.lock_file is not None:  # else these files belong to the stack holding the home
            self.layout.redis_port_file.unlink(missing_ok=True)
            self.layout.url_file.unlink(missing_ok=True)


RESTARTED = "the local stack was restarted"
RECOVERED = {  # outcome of the recovery rule -> what the launcher says about the job
    "cancelled": "cancelled (it was being cancelled when the stack stopped)",
    "failed:infrastructure": "failed, no attempts left",
    "requeued": "interrupted, queued again (resumes from its latest checkpoint)",
}


def requeue_interrupted_jobs(settings: Settings) -> list[str]:
    """Jobs that were running when the previous local stack died (no clean stop) still
    hold a lease. Only this stack's worker could hold it, and it is not running yet, so
    every lease counts as expired now: the recovery rule the reaper applies to expired
    leases (jobstore.recovery), without waiting for them to run out."""
    from jobstore import recovery

    recovered = recovery.recover_expired_leases(settings, lambda job: RESTARTED, now=math.inf)
    return [f"job {job.id}: {RECOVERED[outcome]}" for job, outcome in recovered
            if outcome in RECOVERED]


def up(home: str | Path, host: str, port: int | None) -> int:
    # Inherited by every child (Redis, the API, the worker and its trainers): the database,
    # logs, token file, run directories and checkpoints are the user's alone.
    os.umask(PRIVATE_UMASK)
    stack = LocalStack(home, host, port or free_port(host))
    proctree.become_subreaper()

    def request_stop(signum, frame):
        stack.stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        stack.start()
        if not stack.stop_requested.is_set():
            stack.layout.url_file.write_text(stack.url + "\n")
            token = stack.layout.token.read_text().strip()
            print(f"sam3v is running at {stack.url}\n"
                  f"  token:  {token}   (also in {stack.layout.token})\n"
                  f"  logs:   {stack.layout.logs}\n"
                  f"  try:    sam3v submit examples/train_tiny.json --home {stack.layout.root}\n"
                  f"Press Ctrl-C to stop.", flush=True)
            stack.run_until_stopped()
        return 0
    except (StartError, RedisNotFound) as err:
        log(str(err))
        return 1
    finally:
        stack.stop()
        log("stopped")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="sam3v up", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address the API listens on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="API port; 0 picks a free one (default 8000)")
    parser.add_argument("--home", default=DEFAULT_HOME, help=f"where everything is stored (default {DEFAULT_HOME})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return up(args.home, args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
