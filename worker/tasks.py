"""The task: one delivery of "please run job N".

claim (a duplicate delivery finds nothing to claim and returns) -> write RUN_DIR/job.json
-> launch torchrun (worker/launchers: on this host, or as a SLURM job) -> supervise ->
finish: succeeded, failed with a classified reason, cancelled, or back to the queue for
another attempt (the trainer resumes from its latest checkpoint by itself).
"""
from __future__ import annotations

import errno
import functools
import logging
import re
import signal
import threading
from pathlib import Path

from celery.signals import worker_process_init

import jobstore
from jobstore import broker, recovery
from jobstore.checkpoints import previous_checkpoint
from jobstore.settings import Settings, get_settings
from sam3_video import exit_codes
from sam3_video.config import ConfigError, EvalConfig, TrainConfig, parse_config, resolve_paths
from sam3_video.run_layout import JOB_FILE, job_dir, write_json_atomic
from worker import launch
from worker.launchers import launcher_for
from worker.celery_app import app, cancel_grace_s, worker_gpu_ids, worker_id
from worker.limits import Limits
from worker.supervise import Outcome, Supervisor, lease_kept

log = logging.getLogger(__name__)

# Set by SIGUSR2, which the worker's main process sends on shutdown (celery_app).
STOP_REQUESTED = threading.Event()
# torchrun itself exits 1 whenever a rank fails; the rank's own code is in its report.
ROOT_CAUSE_EXIT = re.compile(r"Root Cause.*?exitcode\s*:\s*(-?\d+)", re.S)
# torchrun's own report starts with this line; what comes before is the ranks' output.
TORCHRUN_REPORT = re.compile(r"^.*\] failed \(exitcode: -?\d+\).*$", re.M)
LOG_TAIL_BYTES = 8000
DISK_FULL_TEXT = "No space left on device"  # strerror(ENOSPC), in a traceback of the log
# Limits the supervisor enforces (worker/limits.py); each is the job's failure kind.
LIMIT_KINDS = ("time_limit", "disk_quota")


@worker_process_init.connect
def _init_pool_process(**_):
    """In each forked pool process: a fresh DB connection pool (never share sockets or
    SQLite handles with the parent) and the shutdown signal handler."""
    jobstore.get_engine().dispose(close=False)
    signal.signal(signal.SIGUSR2, lambda *_: STOP_REQUESTED.set())


@app.task(name=broker.TASK_NAME)
def run_job(job_id: int) -> str:
    return run(int(job_id))


def run(job_id: int, settings: Settings | None = None) -> str:
    """Run one attempt of the job if it is ours to run. Returns what happened, briefly."""
    settings = settings or get_settings()
    gpu_ids = worker_gpu_ids(settings)
    job = jobstore.get_job(job_id)
    if job is None:
        log.warning("job %s: no such job, message dropped", job_id)
        return "missing"
    if job.gpus != len(gpu_ids):  # misrouted: never run on the wrong hardware
        if job.state == "queued":
            broker.enqueue(settings, job.id, job.gpus, priority=job.priority)
        log.warning("job %s wants %s GPUs, this worker has %s: re-sent", job_id, job.gpus, len(gpu_ids))
        return "misrouted"
    if job.nodes > 1 and settings.launcher != "slurm":  # only a SLURM worker spans nodes
        if job.state == "queued":
            broker.enqueue(settings, job.id, job.gpus, priority=job.priority, nodes=job.nodes)
        log.warning("job %s wants %s nodes, this worker runs on one: re-sent", job_id, job.nodes)
        return "misrouted"
    claimed = jobstore.claim_job(job_id, worker_id(settings), settings.lease_seconds)
    if claimed is None:
        log.info("job %s is %s, not queued: duplicate delivery, nothing to do", job_id, job.state)
        return "not-queued"
    log.info("job %s attempt %s claimed", job_id, claimed.attempt)
    try:
        return run_attempt(claimed, settings, gpu_ids)
    except Exception as err:  # a bug or a full disk in the worker: never leave it running
        log.exception("job %s: the worker failed", job_id)
        if is_disk_full(err) and jobstore.finish_job(
                claimed.id, claimed.attempt, "failed", "disk_full",
                disk_full_reason(claimed, f"The worker could not write: {err}")):
            return "failed:disk_full"
        return recovery.retry_or_fail(claimed, f"worker error: {err!r}", settings)


def run_attempt(job: jobstore.Job, settings: Settings, gpu_ids: list[int]) -> str:
    run_dir = job_dir(settings.runs_root, job.id)
    try:
        config = resolved_config(job.kind, job.config, settings)
    except ConfigError as err:
        jobstore.finish_job(job.id, job.attempt, "failed", "config", str(err))
        return "failed:config"
    write_job_file(run_dir, job, config)
    env = launch.child_env(settings.data_root, settings.runs_root, gpu_ids)
    # Starting may wait (a SLURM launcher first stops an earlier attempt's job): keep the lease.
    with lease_kept(job.id, job.attempt, settings.lease_seconds):
        launched = launcher_for(settings).start(job.kind, job.gpus, job.nodes, run_dir,
                                                job.attempt, env)
    supervisor = Supervisor(job.id, job.attempt, getattr(config, "max_steps", None), run_dir,
                            launched, lease_seconds=settings.lease_seconds,
                            cancel_grace_s=cancel_grace_s(settings), stop_requested=STOP_REQUESTED,
                            limits=Limits.for_job(job, run_dir, settings))
    try:
        outcome = supervisor.run()
    finally:
        launched.kill()  # whatever happened above, no process of this attempt stays
    return finish(job, outcome, launched.log_path, settings)


# ---------------------------------------------------------------- job.json

def resolved_config(kind: str, raw: dict, settings: Settings) -> TrainConfig | EvalConfig:
    """Validate the stored config and make every path in it absolute (datasets and a user's
    weights under DATA_ROOT and never under RUNS_ROOT, model.init.job_id -> that job's
    checkpoint file)."""
    config = parse_config(kind, raw)
    return resolve_paths(config, data_root=settings.data_root,
                         checkpoint_of=functools.partial(previous_checkpoint, settings.runs_root),
                         runs_root=settings.runs_root)


def write_job_file(run_dir: Path, job: jobstore.Job, config: TrainConfig | EvalConfig) -> Path:
    """RUN_DIR/job.json, written atomically (a half-written file is never read)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    envelope = {"kind": job.kind, "job_id": job.id, "attempt": job.attempt,
                "config": config.model_dump(mode="json")}
    return write_json_atomic(run_dir / JOB_FILE, envelope, indent=2)


# ---------------------------------------------------------------- finishing

def log_tail(path: Path, size: int = LOG_TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - size))
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def trainer_exit_code(torchrun_code: int | None, tail: str) -> int | None:
    if torchrun_code == 0:
        return 0
    causes = ROOT_CAUSE_EXIT.findall(tail)
    return int(causes[-1]) if causes else torchrun_code


def classify(code: int | None, tail: str) -> str:
    """config | oom | disk_full | infrastructure, from the trainer's exit code and its log."""
    if code == exit_codes.CONFIG_ERROR:
        return "config"
    if code == exit_codes.OUT_OF_MEMORY or "out of memory" in tail.lower():
        return "oom"
    if code == exit_codes.DISK_FULL or DISK_FULL_TEXT in tail:
        return "disk_full"
    return "infrastructure"


def is_disk_full(err: BaseException) -> bool:
    """The worker's own write (job.json, the attempt's log) failed on a full disk."""
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full_reason(job: jobstore.Job, detail: str) -> str:
    return (f"disk full: no space left for the run directory (ENOSPC); free space, then "
            f"POST /jobs/{job.id}/retry resumes from the last complete checkpoint. {detail}")


def last_lines(tail: str, n: int = 15) -> str:
    """The last lines the program itself wrote, without torchrun's failure report."""
    report = TORCHRUN_REPORT.search(tail)
    if report:
        tail = tail[:report.start()]
    lines = [line for line in tail.splitlines() if line.strip()]
    return "\n".join(lines[-n:])[-2000:]


def finish(job: jobstore.Job, outcome: Outcome, log_file: Path, settings: Settings) -> str:
    if outcome.survivors:
        log.error("job %s: processes %s survived SIGKILL", job.id, outcome.survivors)
    if outcome.stopped_by == "lease_lost":
        return "lease-lost"  # another attempt owns the job now; nothing to record
    if outcome.stopped_by == "cancel":
        jobstore.finish_job(job.id, job.attempt, "cancelled", "cancelled",
                            recovery.CANCELLED_ON_REQUEST)
        return "cancelled"
    if outcome.stopped_by == "shutdown":  # no failure: not counted against max_attempts
        return recovery.requeue(job, "the worker shut down; resumes from the latest checkpoint",
                                settings)
    if outcome.stopped_by in LIMIT_KINDS:  # the same run would hit it again: no retry
        if jobstore.finish_job(job.id, job.attempt, "failed", outcome.stopped_by, outcome.message):
            return f"failed:{outcome.stopped_by}"
        return recovery.settle_cancel(job)
    if outcome.interrupted is not None:  # the cluster ended it, not the trainer
        if outcome.interrupted.kind == "preempted":  # nobody's failure: not counted
            return recovery.requeue(job, outcome.interrupted.message, settings)
        return recovery.retry_or_fail(job, outcome.interrupted.message, settings)
    tail = log_tail(log_file)
    code = trainer_exit_code(outcome.exit_code, tail)
    if code == 0:
        jobstore.finish_job(job.id, job.attempt, "succeeded", None, None)
        return "succeeded"
    kind = classify(code, tail)
    reason = f"exit code {code}; end of {log_file.name}:\n{last_lines(tail)}"
    if kind == "disk_full":
        reason = disk_full_reason(job, reason)
    # Retrying would fail the same way: a bad config, too little memory, a full disk
    # (the next attempt would land on the same filesystem; someone has to free space).
    if kind in ("config", "oom", "disk_full"):
        jobstore.finish_job(job.id, job.attempt, "failed", kind, reason)
        return f"failed:{kind}"
    return recovery.retry_or_fail(job, reason, settings)
