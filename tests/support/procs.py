"""Real processes for tests: free ports, waiting, process-tree cleanup, redis-server, and
the project's programs (python -m / torchrun) run as subprocesses that are killed with
their whole tree when they hang."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
BIN = Path(PY).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def kill_tree(proc: subprocess.Popen | int) -> None:
    """SIGKILL a process and every descendant (tests clean up after themselves)."""
    pid = proc if isinstance(proc, int) else proc.pid
    try:
        family = [psutil.Process(pid)]
        family += family[0].children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    for p in family:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    if not isinstance(proc, int):
        proc.wait(timeout=10)


def run_program(argv: list[str], env: dict[str, str], timeout: float,
                cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """Run one of the project's programs to completion; on timeout its whole process tree
    is killed (a hung gloo shutdown fails the test, not the suite) and the test fails with
    the program's output."""
    proc = subprocess.Popen(argv, env=env, cwd=cwd or REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        out, _ = proc.communicate()
        raise AssertionError(f"{' '.join(map(str, argv))} hung for {timeout:.0f} s:\n{out[-4000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, "")


class RedisServer:
    """A real redis-server on a free loopback port, its data in `directory`."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        # RDB snapshot on shutdown only: "stop with data" keeps the queues, "wipe" loses them.
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--save", "3600 1", "--appendonly", "no", "--daemonize", "no"],
            stdout=open(self.dir / "redis.log", "ab"), stderr=subprocess.STDOUT)
        wait_until(self.ping, 10, "redis-server to answer")
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, keep_data: bool) -> None:
        """SHUTDOWN SAVE (the queues survive a restart) or SIGKILL + delete the dump."""
        if keep_data:
            self.proc.send_signal(signal.SIGTERM)  # redis saves an RDB snapshot on SIGTERM
            self.proc.wait(timeout=20)
        else:
            self.proc.kill()
            self.proc.wait(timeout=10)
            (self.dir / "dump.rdb").unlink(missing_ok=True)

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
