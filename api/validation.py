"""Checks a POSTed job before anything is stored: the spec (sam3_video.config), every
path in it (resolved under DATA_ROOT, symlinks followed, by sam3_video.config.resolve_paths),
the datasets, weights and the GPU count.

The spec is stored as the user sent it plus defaults: the resolved paths are only used
here, and the worker resolves again (on its own host) when it writes job.json."""
from __future__ import annotations

import functools
from pathlib import Path

from sqlalchemy import Engine

from api.auth import Caller
from api.deps import load_visible_job
from api.errors import ApiError
from api.schemas import JobCreate
from jobstore.checkpoints import previous_checkpoint
from jobstore.settings import Settings
from sam3_video.config import (ConfigError, EvalConfig, TrainConfig, dataset_fields,
                               parse_config, resolve_paths)
from sam3_video.data import validate_dataset


def validate_job(body: JobCreate, settings: Settings, engine: Engine,
                 caller: Caller) -> TrainConfig | EvalConfig:
    """The parsed spec, unresolved (model.init keeps its job_id, gets no path). Raises
    ApiError(422) listing every problem, each naming its field: all that the resolver
    finds; once every path resolves, every missing or broken dataset and weights file."""
    data = dict(body.config)
    if body.gpus is not None:
        data["gpus"] = body.gpus
    try:
        config = parse_config(body.kind, data)
    except ConfigError as err:
        raise ApiError(422, "invalid job config", [f"config.{p}" for p in err.problems]) from None

    problems: list[str] = []
    try:
        resolved = resolve_paths(config, data_root=settings.data_root,
                                 checkpoint_of=_checkpoint_lookup(engine, settings, caller),
                                 runs_root=settings.runs_root)
    except ConfigError as err:
        problems.extend(f"config.{p}" for p in err.problems)
    else:
        _check_files(problems, config, resolved)
    if body.time_limit_s is not None and body.time_limit_s > settings.job_time_limit_s:
        problems.append(f"time_limit_s: {body.time_limit_s} s is above this server's limit of "
                        f"{settings.job_time_limit_s} s (SAM3V_JOB_TIME_LIMIT_S); a job may "
                        "only lower it")
    if config.gpus not in settings.gpu_counts:
        problems.append(f"gpus: no worker queue serves {config.gpus} GPU(s); available sizes: "
                        f"{sorted(settings.gpu_counts)} (0 = CPU)")
    if problems:
        raise ApiError(422, "job rejected: " + problems[0], problems)
    return config


def _checkpoint_lookup(engine: Engine, settings: Settings, caller: Caller):
    """resolve_paths' checkpoint_of: a job the caller may not see is one that does not exist."""
    def checkpoint_of(job_id: int, name: str) -> Path:
        try:
            load_visible_job(engine, job_id, caller)
        except ApiError:
            raise ConfigError([f"model.init.job_id: job {job_id} not found"]) from None
        return previous_checkpoint(settings.runs_root, job_id, name)
    return checkpoint_of


def _check_files(problems: list[str], config: TrainConfig | EvalConfig,
                 resolved: TrainConfig | EvalConfig) -> None:
    """The datasets and a user-named weights file exist (a job_id's checkpoint was found by
    the lookup). A path the OS refuses (name too long) becomes a problem naming its field."""
    written = dataset_fields(config)
    for field, path in dataset_fields(resolved).items():
        _usable(problems, f"config.{field}", _check_dataset, problems, f"config.{field}",
                written[field], Path(path))
    init = config.model.init
    if init is not None and init.path is not None:
        field = "config.model.init.path"
        if not _usable(problems, field, Path(resolved.model.init.path).is_file):
            problems.append(f"{field}: weights file {init.path!r} not found")


def _usable(problems: list[str], field: str, fn, *args):
    """fn(*args); an OSError (ENAMETOOLONG...) becomes a problem naming `field`."""
    try:
        return fn(*args)
    except (ValueError, OSError) as err:
        reason = getattr(err, "strerror", None) or str(err)  # strerror: no server paths
        problems.append(f"{field}: not a usable path ({reason})"[:300])
        return None


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
