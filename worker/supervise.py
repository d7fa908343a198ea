"""The supervision loop of one attempt: one thread, one tick a second.

The trainer is a `Launch` (worker/launchers: torchrun on this host, or a SLURM job).
Each tick: let the launch look at its processes, feed new metrics and checkpoints to the job store,
check the job's limits (worker/limits.py: running time, run-directory disk use) and
every few seconds renew the lease. It ends when the trainer exits, or stops the trainer
itself when the job is cancelled, the lease is lost, the worker shuts down or a limit
is exceeded.
"""
from __future__ import annotations

import bisect
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

import jobstore
from sam3_video.run_layout import CHECKPOINT_DIR, METRICS_FILE
from worker.ingest import CheckpointScanner, MetricsTail, StepRate, metric_rows
from worker.launchers import Interruption, Launch
from worker.limits import Limits

log = logging.getLogger(__name__)

METRICS_BATCH = 500  # rows per add_metrics call (one transaction each)


@dataclass
class Outcome:
    exit_code: int | None
    # None | "cancel" | "lease_lost" | "shutdown" | "time_limit" | "disk_quota"
    stopped_by: str | None = None
    survivors: tuple[int | str, ...] = ()
    message: str | None = None      # why a limit stopped it (the job's failure reason)
    # The cluster ended it (node failure, preemption): resumed from the newest checkpoint.
    interrupted: Interruption | None = None


def attempt_starts(job_id: int) -> list[tuple[float, int]]:
    """(started_at, number) of every attempt of the job, oldest first."""
    with jobstore.session_scope(jobstore.get_engine(), write=False) as s:
        rows = s.execute(select(jobstore.Attempt.started_at, jobstore.Attempt.number)
                         .where(jobstore.Attempt.job_id == job_id).order_by(jobstore.Attempt.number))
        return [(float(t), int(n)) for t, n in rows]


def registered_checkpoints(job_id: int) -> set[str]:
    """Names already in the store: an attempt does not hash an earlier one's files again."""
    with jobstore.session_scope(jobstore.get_engine(), write=False) as s:
        return set(s.scalars(select(jobstore.Checkpoint.name).where(jobstore.Checkpoint.job_id == job_id)))


@contextmanager
def lease_kept(job_id: int, attempt: int, lease_seconds: float, keep: bool = True):
    """Renew the lease from a thread while the block runs (stopping a trainer, or a SLURM
    launcher waiting for an earlier attempt's job to go), so the reaper does not requeue
    the job under us meanwhile."""
    if not keep:
        yield
        return
    done = threading.Event()

    def renew() -> None:
        while not done.wait(min(5.0, lease_seconds / 3)):
            try:
                jobstore.renew_lease(job_id, attempt, lease_seconds)
            except Exception:  # the next renewal tries again; the reaper is the backstop
                log.exception("job %s: renewing the lease in the background failed", job_id)

    keeper = threading.Thread(target=renew, daemon=True, name=f"lease-job-{job_id}")
    keeper.start()
    try:
        yield
    finally:
        done.set()
        keeper.join()


class Supervisor:
    def __init__(self, job_id: int, attempt: int, max_steps: int | None, run_dir: Path,
                 launched: Launch, *, lease_seconds: float, cancel_grace_s: float,
                 stop_requested: threading.Event, tick_s: float = 1.0,
                 limits: Limits | None = None):
        self.job_id, self.attempt, self.max_steps = job_id, attempt, max_steps
        self.run_dir = run_dir
        self.launched = launched
        self.lease_seconds = lease_seconds
        self.renew_every = min(5.0, lease_seconds / 3)
        self.cancel_grace_s = cancel_grace_s
        self.stop_requested = stop_requested
        self.tick_s = tick_s
        self.limits = limits
        # Every attempt re-reads metrics.jsonl from the start (see writer_of).
        self.metrics = MetricsTail(run_dir / METRICS_FILE)
        self.checkpoints = CheckpointScanner(run_dir / CHECKPOINT_DIR)
        self.checkpoints.seen |= registered_checkpoints(job_id)
        self.rate = StepRate()
        self.last_step: int | None = None
        # Read but not stored yet: (attempt that wrote it, row).
        self.pending: list[tuple[int, tuple[str, int, float, float]]] = []
        self.attempt_starts: list[tuple[float, int]] = []
        self.last_renewed = time.monotonic()

    def run(self) -> Outcome:
        next_renew = time.monotonic() + self.renew_every
        while True:
            self.launched.refresh()
            exit_code = self.launched.poll()
            if exit_code is not None:
                self.final_ingest()
                return Outcome(exit_code, interrupted=self.launched.interruption())
            self.ingest()
            if self.stop_requested.is_set():
                return self.stop("shutdown")
            exceeded = self.limits.check() if self.limits is not None else None
            if exceeded:
                log.warning("job %s: %s", self.job_id, exceeded[1])
                return self.stop(*exceeded)
            if time.monotonic() >= next_renew:
                next_renew = time.monotonic() + self.renew_every
                reason = self.renew()
                if reason:
                    return self.stop(reason)
            self.launched.wait(self.tick_s)  # one tick, or less if the trainer exits

    def renew(self) -> str | None:
        """Renew the lease; the reason to stop, if any."""
        try:
            state = jobstore.renew_lease(self.job_id, self.attempt, self.lease_seconds)
        except Exception:  # a locked or unreachable database: try again next time
            log.exception("job %s: renewing the lease failed", self.job_id)
            # Stop before the lease runs out, or the reaper hands the job to another
            # worker while this trainer still writes into the same run directory.
            if time.monotonic() - self.last_renewed > 0.8 * self.lease_seconds:
                return "lease_lost"
            return None
        self.last_renewed = time.monotonic()
        if state is None:
            log.warning("job %s attempt %s: lease lost", self.job_id, self.attempt)
            return "lease_lost"
        if state == "cancelling":
            return "cancel"
        return None

    def stop(self, reason: str, message: str | None = None) -> Outcome:
        log.info("job %s: stopping the trainer (%s)", self.job_id, reason)
        # The trainer may take SAM3V_CANCEL_GRACE_S to checkpoint, longer than a lease:
        # keep the lease meanwhile, or the reaper requeues the job under us (and a job
        # stopped by a limit would run again). A lost lease is not ours to keep.
        with lease_kept(self.job_id, self.attempt, self.lease_seconds, keep=reason != "lease_lost"):
            survivors = self.launched.terminate(self.cancel_grace_s)
            self.final_ingest()  # includes the checkpoint written on SIGTERM
        return Outcome(self.launched.poll(), reason, tuple(survivors), message)

    def final_ingest(self, tries: int = 5) -> None:
        """After the trainer exited there is no next tick: retry a busy database."""
        for _ in range(tries):
            if self.ingest():
                return
            time.sleep(1.0)

    def ingest(self) -> bool:
        """Move new metrics lines and checkpoint files into the job store."""
        try:
            self._ingest_metrics()
            for ckpt in self.checkpoints.new_files():
                jobstore.add_checkpoint(self.job_id, ckpt.name, ckpt.step, ckpt.size_bytes,
                                     ckpt.sha256, str(ckpt.path))
            return True
        except Exception:  # the files stay; the next tick tries again
            log.exception("job %s: ingesting metrics/checkpoints failed", self.job_id)
            return False

    def writer_of(self, line_time: float) -> int:
        """The attempt that wrote a metrics line: the last one started before it. Lines
        of earlier attempts are re-read too, so none is lost when a worker died before
        storing them; the file is in time order, so a re-trained step ends up stored
        with the value (and attempt) that trained it last."""
        if not self.attempt_starts:
            return self.attempt
        index = bisect.bisect_right(self.attempt_starts, (line_time, float("inf"))) - 1
        return self.attempt_starts[max(0, index)][1]

    def _ingest_metrics(self) -> None:
        if not self.attempt_starts:
            self.attempt_starts = attempt_starts(self.job_id)
        records = self.metrics.read_new()
        for record in records:
            writer = self.writer_of(float(record.get("time", time.time())))
            self.pending.extend((writer, row) for row in metric_rows(record))
            if "loss" in record:  # a training line: progress and speed
                self.rate.add(record["step"], float(record.get("time", time.time())))
                self.last_step = record["step"]
        while self.pending:  # drop rows only once the store has them
            writer = self.pending[0][0]
            batch = []
            for attempt, row in self.pending[:METRICS_BATCH]:
                if attempt != writer:
                    break
                batch.append(row)
            jobstore.add_metrics(self.job_id, writer, batch)
            del self.pending[:len(batch)]
        if records and self.last_step is not None:
            jobstore.record_progress(self.job_id, self.last_step, self.max_steps,
                                  self.rate.eta_seconds(self.max_steps))
