"""Checks shared by every task, run before anything trains: the dataset paths of a config
resolve under DATA_ROOT and pass sam3_video.data's validator, and initial weights exist."""
from __future__ import annotations

from pathlib import Path

from sam3_video.config import (ConfigError, EvalConfig, TrainConfig, data_path,
                               dataset_fields, weights_path)


def dataset_problems(field: str, root: Path, min_frames: int | None = None) -> list[str]:
    """Every problem of the dataset at `root` (sam3_video.data's validator: JSON, frame
    files, masks, boxes), each line naming the config field and the file; [] when usable."""
    from sam3_video.data import load_native, validate_dataset

    if not root.is_dir():
        return [f"{field}: dataset directory {root} does not exist"]
    found = validate_dataset(root)
    if found:
        return [f"{field}: {root / p.file}" + (f" {p.record}" if p.record else "") + f": {p.message}"
                for p in found]
    native = load_native(root, check_masks=False)  # already checked above
    problems = []
    if not native.tracks:
        problems.append(f"{field}: {native.annotation_file}: no annotations to learn from")
    # Shorter videos are skipped in training; with none long enough nothing is left.
    if min_frames is not None and native.videos and all(
            v.length < min_frames for v in native.videos.values()):
        longest = max(v.length for v in native.videos.values())
        problems.append(f"{field}: {native.annotation_file}: the longest video has {longest} "
                        f"frames, data.frames_per_clip asks for {min_frames}")
    return problems


def config_problems(cfg: TrainConfig | EvalConfig, min_train_frames: int | None = None) -> list[str]:
    """Every problem with the datasets and initial weights of `cfg`, each naming its field.
    `min_train_frames`: data.train needs at least one video that long."""
    problems = []
    for field, path in dataset_fields(cfg).items():
        try:
            root = data_path(path, field)
        except ConfigError as err:
            problems += err.problems
            continue
        problems += dataset_problems(field, root, min_train_frames if field == "data.train" else None)
    init = cfg.model.init
    if init is not None and init.path is not None:
        try:
            if not weights_path(init.path, "model.init.path").is_file():
                problems.append(f"model.init.path: {init.path} does not exist")
        except ConfigError as err:
            problems += err.problems
    return problems
