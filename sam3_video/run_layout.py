"""Checkpoint names inside a job's run directory: the contract between the trainer (which
writes them), the worker (which registers them) and the API (which serves them and resolves
`{"job_id": N, "checkpoint": "latest"}`). Free of torch, so the worker and the API can
import it."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_NAME = re.compile(r"^step_(\d{7})\.pt$")
LATEST = "latest"


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
