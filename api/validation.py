"""Checks a POSTed job before anything is stored: the spec (sam3_video.config), every
path in it (resolved under DATA_ROOT, symlinks followed, by sam3_video.config.resolve_paths),
the datasets, weights and the GPU count.

The spec is stored as the user sent it plus defaults: the resolved paths are only used
here, and the worker resolves again (on its own host) when it writes job.json."""
from __future__ import annotations

import math
from concurrent.futures import wait
from pathlib import Path

from sqlalchemy import Engine

from api.auth import Caller
from api.datasets import dataset_registry
from api.deps import load_visible_job
from api.errors import ApiError
from api.schemas import JobCreate
from api.uploads import is_foreign_upload
from api.webhooks import url_problem as webhook_url_problem
from jobstore.checkpoints import previous_checkpoint
from jobstore.settings import Settings
from sam3_video.config import (ConfigError, EvalConfig, TrainConfig, dataset_fields,
                               parse_config, resolve_paths)


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
    datasets = _DatasetChecks(settings, caller)
    try:
        resolved = resolve_paths(config, data_root=settings.data_root,
                                 checkpoint_of=_checkpoint_lookup(engine, settings, caller),
                                 runs_root=settings.runs_root)
    except ConfigError as err:
        problems.extend(f"config.{p}" for p in err.problems)
    else:
        _check_files(problems, config, resolved, datasets)
    still_validating = datasets.validate(problems)
    if body.time_limit_s is not None and body.time_limit_s > settings.job_time_limit_s:
        problems.append(f"time_limit_s: {body.time_limit_s} s is above this server's limit of "
                        f"{settings.job_time_limit_s} s (SAM3V_JOB_TIME_LIMIT_S); a job may "
                        "only lower it")
    if body.webhook_url is not None and (reason := webhook_url_problem(body.webhook_url, settings)):
        problems.append(f"webhook_url: {reason}")
    nodes = getattr(config, "nodes", 1)
    if nodes > 1 and config.gpus not in settings.slurm_gpu_counts:
        problems.append(f"nodes: {nodes} nodes need a SLURM worker, and no SLURM worker queue "
                        f"serves {config.gpus} GPU(s) per node; SLURM sizes: "
                        f"{sorted(settings.slurm_gpu_counts)} (SAM3V_SLURM_GPU_COUNTS; empty: "
                        "this server runs single-node jobs only)")
    elif nodes == 1 and config.gpus not in settings.gpu_counts:
        problems.append(f"gpus: no worker queue serves {config.gpus} GPU(s); available sizes: "
                        f"{sorted(settings.gpu_counts)} (0 = CPU)")
    if problems:
        raise ApiError(422, "job rejected: " + problems[0], problems)
    if still_validating:
        retry = max(1, math.ceil(settings.dataset_validation_wait_s))
        raise ApiError(409, f"job not queued: {still_validating[0]}; retry in a few seconds",
                       still_validating, headers={"Retry-After": str(retry)})
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
                 resolved: TrainConfig | EvalConfig, datasets: _DatasetChecks) -> None:
    """The datasets and a user-named weights file exist (a job_id's checkpoint was found by
    the lookup). A path the OS refuses (name too long) becomes a problem naming its field."""
    written = dataset_fields(config)
    for field, path in dataset_fields(resolved).items():
        _usable(problems, f"config.{field}", datasets.check, problems, f"config.{field}",
                written[field], Path(path))
    from sam3_video.config import input_fields, input_problem  # predict: a video, mask files
    for field, path in input_fields(resolved).items():
        found, where = Path(path), f"config.{field}"
        reason = ("not found under DATA_ROOT" if datasets.foreign(found)
                  else _usable(problems, where, input_problem, field, found))
        if reason:
            problems.append(f"{where}: {input_fields(config)[field]!r}: {reason}")
    init = config.model.init
    if init is not None and init.path is not None:
        field = "config.model.init.path"
        weights = Path(resolved.model.init.path)
        if datasets.foreign(weights) or not _usable(problems, field, weights.is_file):
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


class _DatasetChecks:
    """The datasets a job names: found now (another user's upload counts as missing),
    then validated together through api.datasets' registry, once per dataset version,
    off the request path: a cached result costs nothing, a first validation is waited
    for up to SAM3V_DATASET_VALIDATION_WAIT_S."""

    def __init__(self, settings: Settings, caller: Caller):
        self.settings, self.caller = settings, caller
        self.found: list[tuple[str, str, Path]] = []

    def foreign(self, path: Path) -> bool:
        return is_foreign_upload(self.settings.data_root, path, self.caller.id)

    def check(self, problems: list, field: str, rel: str, path: Path) -> None:
        if self.foreign(path) or not path.is_dir():
            problems.append(f"{field}: dataset directory {rel!r} not found under DATA_ROOT")
            return
        if not (path / "annotations.json").is_file():
            problems.append(f"{field}: dataset {rel!r} has no annotations.json")
            return
        self.found.append((field, rel, path))

    def validate(self, problems: list) -> list[str]:
        """Add the problems of every found dataset validated in time; the fields whose
        validation is still running, each with a message."""
        registry = dataset_registry(self.settings)
        started = []
        for field, rel, path in self.found:
            try:
                started.append((field, rel, registry.start(path)))
            except OSError as err:
                problems.append(f"{field}: dataset {rel!r}: annotations.json cannot be read "
                                f"({err.strerror})")
        wait([f for _, _, f in started], timeout=self.settings.dataset_validation_wait_s)
        running = []
        for field, rel, future in started:
            if not future.done():
                running.append(f"{field}: dataset {rel!r} is still being validated")
                continue
            try:
                result = future.result()
            except Exception as err:  # noqa: BLE001  (an unreadable file: name the dataset)
                problems.append(f"{field}: dataset {rel!r} could not be validated "
                                f"({err.__class__.__name__})")
                continue
            problems.extend(f"{field}: {rel}/{p}" for p in result.problems[:MAX_DATASET_PROBLEMS])
            if result.problem_count > MAX_DATASET_PROBLEMS:
                problems.append(f"{field}: ... and {result.problem_count - MAX_DATASET_PROBLEMS} "
                                "more problems")
        return running
