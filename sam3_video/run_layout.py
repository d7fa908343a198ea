"""The run directory: every file a job's programs write and the service reads.

One job, one directory, ``RUNS_ROOT/job-<id>`` (derived from the id, never stored)::

    job.json              the resolved spec the worker hands the program (envelope)
    metrics.jsonl         one flushed JSON object per line, rank 0 only
    evaluation.json       base and final validation metrics of a training job
    results.json          an evaluation job's scores (a predict job's summary)
    predictions.json      an evaluation job's masklets / per-prediction records; a predict
                          job's {"video", "frames", ..., "masklets"}
    overlays/             a predict job's masks drawn on the video: <video>.mp4, <video>.png
    logs/attempt-N.log    stdout + stderr of attempt N
    slurm/job-N.sbatch    attempt N's batch script (SLURM launcher); slurm/job-N.json its
                          SLURM job id, nodes and state
    checkpoints/step_NNNNNNN.pt

Writers (trainer, evaluator, worker) and readers (worker, API) import these names from
here only. Free of torch, so the worker and the API can import it."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

JOB_FILE = "job.json"
METRICS_FILE = "metrics.jsonl"
EVALUATION_FILE = "evaluation.json"
RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions.json"
OVERLAYS_DIR = "overlays"
LOG_DIR = "logs"
TENSORBOARD_DIR = "tb"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_NAME = re.compile(r"^step_(\d{7})\.pt$")
LATEST = "latest"
SLURM_DIR = "slurm"


def job_dir(runs_root: str | os.PathLike, job_id: int) -> Path:
    """A job's run directory: derived from its id, so nothing needs to store it."""
    return Path(runs_root) / f"job-{int(job_id)}"


def log_path(run_dir: str | os.PathLike, attempt: int) -> Path:
    return Path(run_dir) / LOG_DIR / f"attempt-{int(attempt)}.log"


def slurm_script_path(run_dir: str | os.PathLike, attempt: int) -> Path:
    return Path(run_dir) / SLURM_DIR / f"job-{int(attempt)}.sbatch"


def slurm_record_path(run_dir: str | os.PathLike, attempt: int) -> Path:
    """What the SLURM launcher knows of attempt N's SLURM job: {slurm_job_id, nodes, state}."""
    return Path(run_dir) / SLURM_DIR / f"job-{int(attempt)}.json"


def checkpoint_name(step: int) -> str:
    return f"step_{step:07d}.pt"


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint file in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), directory / f.name)
             for f in directory.iterdir() if (m := CHECKPOINT_NAME.match(f.name))]
    return sorted(found)


def find_checkpoint(run_dir: str | os.PathLike, name: str) -> Path | None:
    """A run's checkpoint file by name, or LATEST for the highest step; None if absent.
    Raises ValueError when `name` is neither a checkpoint name nor LATEST."""
    directory = Path(run_dir) / CHECKPOINT_DIR
    if name == LATEST:
        found = list_checkpoints(directory)
        return found[-1][1] if found else None
    if not CHECKPOINT_NAME.match(name):
        raise ValueError(f"{name!r} is not a checkpoint name (step_NNNNNNN.pt or {LATEST!r})")
    path = directory / name
    return path if path.is_file() else None


def write_json_atomic(path: str | os.PathLike, data, *, indent: int | None = None) -> Path:
    """Write JSON next to `path` and rename it into place: a reader (the worker, the API,
    a resumed run) never sees a half-written job.json, evaluation.json or results.json."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=indent))
    os.replace(tmp, path)
    return path
