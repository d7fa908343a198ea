"""A previous job's checkpoint file, for a spec's model.init.job_id.

The one lookup behind both `checkpoint_of` callbacks that sam3_video.config.resolve_paths
takes: the API's (after its owner check, when it validates a POSTed job) and the worker's
(when it writes job.json). The stored spec keeps job_id; the file is found where it is used.
"""
from __future__ import annotations

import os
from pathlib import Path

from sam3_video.config import ConfigError
from sam3_video.run_layout import LATEST, find_checkpoint, job_dir


def previous_checkpoint(runs_root: str | os.PathLike, job_id: int, name: str) -> Path:
    """Job `job_id`'s checkpoint `name` (or LATEST: the highest step), absolute.
    Raises ConfigError naming model.init.checkpoint when there is no such file."""
    try:
        path = find_checkpoint(job_dir(runs_root, job_id), name)
    except ValueError as err:
        raise ConfigError([f"model.init.checkpoint: {err}"]) from None
    if path is None:
        missing = "yet" if name == LATEST else repr(name)
        raise ConfigError([f"model.init.checkpoint: job {job_id} has no checkpoint {missing}"])
    return path.resolve()
