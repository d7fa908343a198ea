"""The launcher interface: what the supervisor and the task need of a running attempt."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol


@dataclass(frozen=True)
class Interruption:
    """The cluster, not the trainer, ended the attempt (a node failed, the job was
    preempted or requeued...): the job resumes from its newest checkpoint, as after a
    killed worker. "preempted" is nobody's failure and does not count against
    max_attempts; "node_failure" does."""
    kind: Literal["preempted", "node_failure"]
    message: str


class Launch(Protocol):
    """One started attempt."""
    log_path: Path  # stdout + stderr of the trainer (RUN_DIR/logs/attempt-N.log)

    def refresh(self) -> None:
        """Once a tick, before poll: note what is needed to stop the attempt later."""

    def poll(self) -> int | None:
        """The launched program's exit code once it ended, else None."""

    def wait(self, timeout: float) -> None:
        """Sleep up to `timeout` seconds; return early when the attempt ends if it can tell."""

    def terminate(self, grace_s: float) -> list[int | str]:
        """SIGTERM to the trainer (it checkpoints and exits), up to grace_s to do so, then
        kill. Returns what survived even that (empty when all is well)."""

    def kill(self) -> list[int | str]:
        """Kill whatever of the attempt still runs; what survived."""

    def interruption(self) -> Interruption | None:
        """Set once the attempt ended because of the cluster, not the trainer."""

    def facts(self) -> dict:
        """Where it runs, for people: {} for a local run; SLURM job id and nodes."""


class Launcher(Protocol):
    name: str

    def start(self, kind: str, gpus: int, nodes: int, run_dir: Path, attempt: int,
              env: dict[str, str]) -> Launch:
        """Start the program for RUN_DIR/job.json on `nodes` machines, `gpus` per machine
        (one process per GPU; one process when gpus is 0)."""
