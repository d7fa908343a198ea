"""The limits the supervisor enforces on a running job (SAM3V_JOB_TIME_LIMIT_S, a job's
own time_limit_s, SAM3V_RUN_DIR_QUOTA_BYTES), checked once a tick.

- Time: running time of the job's current run, i.e. its attempts since it was submitted
  or last retried (a retry is a person's decision to give it another go, so it starts a
  fresh budget; a requeue after a crash or a worker stop does not). Past the limit the
  trainer gets SIGTERM (it checkpoints) and the job fails with kind "time_limit".
- Disk: bytes the run directory occupies (allocated blocks, like `du`): checkpoints
  (keep_last of them, plus one being written), logs, metrics, TensorBoard files. Past
  the quota the trainer is stopped the same way and the job fails with kind "disk_quota".

Neither is retried: the same run would hit the same limit again.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

import jobstore
from jobstore.settings import Settings


def disk_usage(path: Path) -> int:
    """Bytes allocated to every file under `path` (symlinks not followed); 0 if absent.
    Files that vanish meanwhile (the trainer prunes old checkpoints) are skipped."""
    total = 0
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                    continue
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            blocks = getattr(st, "st_blocks", None)
            total += blocks * 512 if blocks is not None else st.st_size
    return total


def earlier_running_time(job_id: int, attempt: int) -> float:
    """Seconds the attempts before `attempt` ran in this run of the job: walking back from
    the previous attempt while each one ended in a requeue (an attempt that ended failed
    or cancelled closed the previous run; the job was retried after it)."""
    with jobstore.session_scope(jobstore.get_engine(), write=False) as s:
        rows = s.execute(select(jobstore.Attempt.started_at, jobstore.Attempt.finished_at,
                                jobstore.Attempt.outcome)
                         .where(jobstore.Attempt.job_id == job_id,
                                jobstore.Attempt.number < attempt)
                         .order_by(jobstore.Attempt.number.desc())).all()
    total = 0.0
    for started, finished, outcome in rows:
        if outcome != "requeued":
            break
        total += max(0.0, float(finished if finished is not None else started) - float(started))
    return total


def duration(seconds: float) -> str:
    """1d 2h 3m 4s, without the leading zero units."""
    seconds = int(round(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size or parts:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    parts.append(f"{seconds}s")
    return " ".join(parts)


def size(n: int) -> str:
    """Bytes as B, KiB, MiB, GiB or TiB, with the exact byte count alongside."""
    value, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{n} B" if unit == "B" else f"{value:.1f} {unit} ({n} bytes)"


@dataclass
class Limits:
    """One attempt's limits; `check()` says which one is exceeded, with its message."""
    job_id: int
    run_dir: Path
    time_limit_s: float
    time_source: str          # which setting the limit comes from, for the message
    quota_bytes: int
    earlier_s: float = 0.0    # running time of the earlier attempts of this run
    started: float = 0.0      # time.monotonic() when this attempt started

    @classmethod
    def for_job(cls, job: jobstore.Job, run_dir: Path, settings: Settings) -> "Limits":
        own = job.time_limit_s
        if own is not None and own < settings.job_time_limit_s:
            limit, source = float(own), "the job's time_limit_s"
        else:
            limit, source = float(settings.job_time_limit_s), "SAM3V_JOB_TIME_LIMIT_S"
        return cls(job.id, run_dir, limit, source, settings.run_dir_quota_bytes,
                   earlier_s=earlier_running_time(job.id, job.attempt),
                   started=time.monotonic())

    def running_time(self) -> float:
        return self.earlier_s + (time.monotonic() - self.started)

    def check(self) -> tuple[str, str] | None:
        """(reason kind, message) of the first limit exceeded, or None."""
        ran = self.running_time()
        if math.isfinite(self.time_limit_s) and ran > self.time_limit_s:
            earlier = (f", {duration(self.earlier_s)} of it in earlier attempts"
                       if self.earlier_s >= 1 else "")
            return "time_limit", (
                f"time limit exceeded: the job ran {duration(ran)}{earlier}; its limit is "
                f"{duration(self.time_limit_s)} ({self.time_source}). The trainer was stopped "
                f"with SIGTERM (it checkpoints first); POST /jobs/{self.job_id}/retry resumes "
                "it from that checkpoint with a fresh time budget")
        used = disk_usage(self.run_dir)
        if used > self.quota_bytes:
            return "disk_quota", (
                f"disk quota exceeded: the run directory uses {size(used)}, over the limit of "
                f"{size(self.quota_bytes)} (SAM3V_RUN_DIR_QUOTA_BYTES). The trainer was "
                "stopped with SIGTERM; keep fewer checkpoints (keep_last) or ask for a "
                "larger quota")
        return None
