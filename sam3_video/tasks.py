"""Training tasks: what the one trainer (sam3_video.train) trains.

A task owns everything specific to what is learnt; the trainer owns everything generic
(process group, optimiser, AMP, accumulation, checkpoints, metrics, signals). A task is
built from a TrainConfig or an EvalConfig and provides:

    check() -> None                 resolve and validate the dataset paths of the config;
                                    raise config.ConfigError naming the field or file.
                                    Called on every rank before anything is trained.
    build_model() -> nn.Module      the model on CPU, initial weights loaded, freezing applied.
    train_dataset() -> Dataset      items fed to collate(); random augmentation must come
                                    from `random`/numpy/torch or the dataset's own `rng`
                                    (the trainer reseeds those per item, for exact resume).
    collate(items) -> batch
    num_frames(batch) -> int        frames in a batch, for frames_per_s.
    loss(model, batch) -> dict[str, Tensor]
                                    "loss" is the scalar to minimise; every other entry is a
                                    component that is logged under its own key. `model` may
                                    be DDP-wrapped: call model(...) for the forward pass.
    predict(model, root: Path) -> list
                                    predictions over every clip of the dataset at `root`,
                                    each with .to_json() (written to predictions.json).
    score(predictions, root: Path) -> dict[str, float]
                                    metrics of those predictions against root's ground truth.
    evaluate(model, dataset_dir, overlays_dir=None) -> dict[str, float]
                                    score(predict(...)) on a dataset path relative to
                                    DATA_ROOT; the trainer calls it on rank 0, no grad.
                                    With overlays_dir (the final evaluation), a task that
                                    draws (detect) puts prediction-vs-truth sheets there.
    find_unused_parameters: bool    passed to DistributedDataParallel.

Register a new task in `TASKS` (its module is imported when a job of that task runs).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

import torch
from torch.utils.data import Dataset

from sam3_video.config import ConfigError, EvalConfig, TrainConfig


class Task(Protocol):
    find_unused_parameters: bool

    def check(self) -> None: ...

    def build_model(self) -> torch.nn.Module: ...

    def train_dataset(self) -> Dataset: ...

    def collate(self, items: list): ...

    def num_frames(self, batch) -> int: ...

    def loss(self, model: torch.nn.Module, batch) -> dict[str, torch.Tensor]: ...

    def predict(self, model: torch.nn.Module, root: Path) -> list: ...

    def score(self, predictions: list, root: Path) -> dict[str, float]: ...

    def evaluate(self, model: torch.nn.Module, dataset_dir: str,
                 overlays_dir: Path | None = None) -> dict[str, float]: ...


def _detect_task() -> type:
    from sam3_video.detector.task import DetectTask
    return DetectTask


def _track_task() -> type:
    from sam3_video.tracker.task import TrackTask
    return TrackTask


# config `task` -> the loader of its Task class (imported lazily: each pulls in its model code)
TASKS: dict[str, Callable[[], type]] = {"detect": _detect_task, "track": _track_task}


def get_task(cfg: TrainConfig | EvalConfig) -> Task:
    try:
        load = TASKS[cfg.task]
    except KeyError:
        raise ValueError(f"unknown task {cfg.task!r}") from None
    try:
        task_class = load()
    except ImportError:
        raise ConfigError([f"task: {cfg.task!r} is not available in this build"]) from None
    return task_class(cfg)
