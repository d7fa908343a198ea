"""Today's launcher: torchrun --standalone on this host (worker/launch.py), followed as
a process tree (worker/proctree.py: every descendant recorded, all of them stopped)."""
from __future__ import annotations

import subprocess
from pathlib import Path

from jobstore.settings import Settings
from sam3_video.run_layout import log_path
from worker import launch
from worker.launchers.base import Interruption
from worker.proctree import ProcessTree


class LocalLaunch:
    def __init__(self, proc: subprocess.Popen, log_file: Path):
        self.proc = proc
        self.tree = ProcessTree(proc)
        self.log_path = log_file

    def refresh(self) -> None:
        self.tree.refresh()

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float) -> None:
        try:  # wake the moment the trainer exits
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass

    def terminate(self, grace_s: float) -> list[int]:
        return self.tree.terminate(grace_s)

    def kill(self) -> list[int]:
        return self.tree.kill()

    def interruption(self) -> Interruption | None:
        return None  # a local trainer's end is the trainer's own

    def facts(self) -> dict:
        return {}


class LocalLauncher:
    name = "local"

    def __init__(self, settings: Settings):
        self.settings = settings

    def start(self, kind: str, gpus: int, nodes: int, run_dir: Path, attempt: int,
              env: dict[str, str]) -> LocalLaunch:
        if nodes != 1:  # routing keeps them away (queues); a stray message must not run wrong
            raise ValueError(f"nodes: the local launcher runs on one node, the job asks for {nodes}")
        proc = launch.start(kind, max(1, gpus), run_dir, attempt, env)
        return LocalLaunch(proc, log_path(run_dir, attempt))
