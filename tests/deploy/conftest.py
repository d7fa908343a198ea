"""Fixtures for the deploy tests: `sam3v up` run as a real subprocess."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from deploy.home import HomeLayout
from deploy.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


class StackProcess:
    """One `sam3v up --home DIR --port P` process, and every process it was seen to own."""

    def __init__(self, home: Path, port: int):
        self.layout = HomeLayout.of(home)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.seen: dict[int, psutil.Process] = {}
        self.output = home.parent / f"{home.name}-launcher.out"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 180) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "2"}
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "deploy.cli", "up", "--home", str(self.layout.root),
                 "--port", str(self.port)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"sam3v up exited early:\n{self.output_text()}"
            self.remember()
            if self.layout.url_file.is_file() and self.layout.url_file.read_text().strip() == self.url:
                return  # written once /readyz answered 200 (a stale one names another port)
            time.sleep(0.5)
        raise AssertionError(f"sam3v up not ready in {timeout_s} s:\n{self.output_text()}")

    def remember(self) -> None:
        try:
            for p in psutil.Process(self.proc.pid).children(recursive=True):
                self.seen.setdefault(p.pid, p)
        except psutil.NoSuchProcess:
            pass

    def token(self) -> str:
        return self.layout.token.read_text().strip()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30,
                            headers={"Authorization": f"Bearer {self.token()}"})

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 180) -> int:
        self.remember()
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"sam3v up did not stop in {timeout_s} s:\n{self.output_text()}") from None

    def leftovers(self) -> list[str]:
        """Processes still alive that belonged to this stack: seen as its descendants, or
        carrying its home in their environment (which every child inherits)."""
        marker = f"SAM3V_HOME={self.layout.root}"
        left = [p for p in self.seen.values() if _alive(p)]
        for p in psutil.process_iter():
            try:
                if p.pid not in self.seen and _alive(p) and \
                        marker in "\0".join(f"{k}={v}" for k, v in p.environ().items()).split("\0"):
                    left.append(p)
            except psutil.Error:
                pass
        return [f"{p.pid} {_cmdline(p)}" for p in left]

    def output_text(self) -> str:
        return self.output.read_text(errors="replace")[-4000:] if self.output.exists() else ""

    def kill_everything(self) -> None:
        """Test teardown after a failure: nothing of ours may outlive the test."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for p in self.seen.values():
            if _alive(p):
                p.kill()


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return "?"


@pytest.fixture
def stack_home(tmp_path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def make_stack(stack_home):
    """make_stack() -> a StackProcess (not started) on a free port, same home each call."""
    made: list[StackProcess] = []

    def make() -> StackProcess:
        stack = StackProcess(stack_home, free_port())
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.kill_everything()
