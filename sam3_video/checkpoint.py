"""Training checkpoints: atomic writes, keep-last-K, resume from the newest one that loads.

Layout: RUN_DIR/checkpoints/step_XXXXXXX.pt (7-digit step). A file is written as
`<name>.tmp`, fsynced, then os.replace'd into place, so a reader (the worker, or a resumed
run) never sees a half-written checkpoint under a checkpoint name. A file that is cut
short anyway (disk full, copied by hand) fails to load and is skipped on resume.
"""
from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import numpy as np
import torch

from sam3_video.run_layout import checkpoint_name, list_checkpoints  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_atomic(state: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)  # make the rename itself durable
    return path


def prune(directory: str | os.PathLike, keep_last: int) -> None:
    for _, path in list_checkpoints(directory)[:-keep_last]:
        path.unlink(missing_ok=True)


def load(path: str | os.PathLike) -> dict:
    # weights_only=False: our checkpoints hold RNG states (numpy tuples) and the config dict.
    return torch.load(path, map_location="cpu", weights_only=False)


def load_latest(directory: str | os.PathLike) -> dict | None:
    """The newest checkpoint in `directory` that loads; broken ones are logged and skipped."""
    for step, path in reversed(list_checkpoints(directory)):
        try:
            state = load(path)
        except Exception as err:  # a truncated zip raises RuntimeError, others EOFError etc.
            log.warning("skipping checkpoint %s: it does not load (%s: %s)",
                        path, type(err).__name__, err)
            continue
        if not isinstance(state, dict) or state.get("step") != step:
            log.warning("skipping checkpoint %s: not a training checkpoint of step %d", path, step)
            continue
        state["path"] = str(path)
        return state
    return None


def rng_states() -> dict:
    states = {"python": random.getstate(), "numpy": np.random.get_state(),
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
