"""Checks a POSTed job before anything is stored: the spec (sam3_video.config), every
path under DATA_ROOT (symlinks followed), the datasets, weights and the GPU count."""
from __future__ import annotations

import functools
from pathlib import Path

from sqlalchemy import Engine

import jobstore
from api.auth import Caller
from api.deps import MAX_ID
from api.errors import ApiError
from api.schemas import JobCreate
from jobstore.settings import Settings
from sam3_video.config import ConfigError, EvalConfig, TrainConfig, parse_config, resolve_under
from sam3_video.data import validate_dataset
from sam3_video.run_layout import LATEST, find_checkpoint, job_dir



class _Problems(list):
    def check(self, fn, field: str, *args):
        """fn(*args), collecting its ConfigError; an unusable path (NUL byte, name too
        long: ValueError/OSError from the OS) becomes a problem naming `field` too."""
        try:
            return fn(*args)
        except ConfigError as err:
            self.extend(err.problems)
        except (ValueError, OSError) as err:
            reason = getattr(err, "strerror", None) or str(err)  # strerror: no server paths
            self.append(f"{field}: not a usable path ({reason})"[:300])
        return None


def validate_job(body: JobCreate, settings: Settings, engine: Engine,
                 caller: Caller) -> TrainConfig | EvalConfig:
    """The parsed spec, with a previous job's checkpoint filled into model.init.path.
    Raises ApiError(422) listing every problem, each naming its field."""
    data = dict(body.config)
    if body.gpus is not None:
        data["gpus"] = body.gpus
    try:
        config = parse_config(body.kind, data)
    except ConfigError as err:
        raise ApiError(422, "invalid job config", [f"config.{p}" for p in err.problems]) from None

    problems = _Problems()
    data_roots = {"DATA_ROOT": str(settings.data_root)}
    if isinstance(config, TrainConfig):
        datasets = [("config.data.train", config.data.train), ("config.data.val", config.data.val)]
    else:
        datasets = [("config.data.dataset", config.data.dataset)]
    for field, rel in datasets:
        if rel is not None:
            path = problems.check(resolve_under, field, rel, field, data_roots)
            if path is not None:
                problems.check(_check_dataset, field, problems, field, rel, path)

    init = config.model.init
    if init is not None:
        if init.job_id is not None and init.path is not None:
            problems.append("config.model.init: give path or job_id, not both")
        elif init.job_id is not None:
            path = problems.check(_previous_checkpoint, "config.model.init.checkpoint", problems,
                                  engine, settings.runs_root, caller, init.job_id, init.checkpoint)
            if path is not None:
                config.model.init.path = str(path)
        elif init.path is not None:
            roots = {**data_roots, "RUNS_ROOT": str(settings.runs_root)}
            field = "config.model.init.path"
            path = problems.check(resolve_under, field, init.path, field, roots)
            if path is not None and not problems.check(path.is_file, field):
                problems.append(f"config.model.init.path: weights file {init.path!r} not found")

    if config.gpus not in settings.gpu_counts:
        problems.append(f"gpus: no worker queue serves {config.gpus} GPU(s); available sizes: "
                        f"{sorted(settings.gpu_counts)} (0 = CPU)")
    if problems:
        raise ApiError(422, "job rejected: " + problems[0], list(problems))
    return config


MAX_DATASET_PROBLEMS = 20  # enough to act on; `python -m sam3_video.data validate` lists all


def _check_dataset(problems: list, field: str, rel: str, path: Path) -> None:
    if not path.is_dir():
        problems.append(f"{field}: dataset directory {rel!r} not found under DATA_ROOT")
        return
    annotations = path / "annotations.json"
    if not annotations.is_file():
        problems.append(f"{field}: dataset {rel!r} has no annotations.json")
        return
    stat = annotations.stat()
    found = _dataset_problems(str(path), stat.st_mtime_ns, stat.st_size)
    problems.extend(f"{field}: {rel}/{p}" for p in found[:MAX_DATASET_PROBLEMS])
    if len(found) > MAX_DATASET_PROBLEMS:
        problems.append(f"{field}: ... and {len(found) - MAX_DATASET_PROBLEMS} more problems")


@functools.lru_cache(maxsize=64)
def _dataset_problems(path: str, mtime_ns: int, size: int) -> tuple[str, ...]:
    """Every problem of a dataset (sam3_video.data's validator: frames exist, masks decode,
    sizes agree, boxes inside frames). Cached per annotation file version, so polling
    scripts that POST many jobs on one big dataset pay for one validation; the trainer
    validates again before it starts."""
    return tuple(str(p) for p in validate_dataset(path))


def _previous_checkpoint(problems: list, engine: Engine, runs_root: Path, caller: Caller, job_id: int,
                         name: str) -> Path | None:
    field = "config.model.init"
    job = jobstore.get_job(job_id, engine=engine) if job_id <= MAX_ID else None
    if job is None or not (caller.is_admin or job.owner_id == caller.id):
        problems.append(f"{field}.job_id: job {job_id} not found")
        return None
    try:
        path = find_checkpoint(job_dir(runs_root, job_id), name)
    except ValueError as err:
        problems.append(f"{field}.checkpoint: {err}")
        return None
    if path is None:
        missing = "yet" if name == LATEST else repr(name)
        problems.append(f"{field}.checkpoint: job {job_id} has no checkpoint {missing}")
        return None
    return path.resolve()
