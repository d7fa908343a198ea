"""Training checkpoints: atomic writes, keep-last-K, resume from the newest one that loads.

Layout: RUN_DIR/checkpoints/step_XXXXXXX.pt (7-digit step). A file is written as
`<name>.tmp`, fsynced, then os.replace'd into place, so a reader (the worker, or a resumed
run) never sees a half-written checkpoint under a checkpoint name. A write that fails
(disk full) removes its .tmp file and raises the OSError (ENOSPC), which the trainer
reports as exit code DISK_FULL. A file that is cut short anyway (copied by hand) fails to
load and is skipped on resume.

A checkpoint holds only tensors and plain data (numbers, strings, None, lists, dicts), so
it is read with torch.load(weights_only=True) like every weights file (sam3_video.weights):
the RNG states are stored as tensors and numbers (`rng_states`), the sampler's position as
ints, the config as its JSON dump.
"""
from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import numpy as np
import torch

from sam3_video.run_layout import checkpoint_name, list_checkpoints  # noqa: F401 (re-exported)
from sam3_video.weights import load_file

log = logging.getLogger(__name__)

def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _KeepWriteError:
    """The file object torch.save writes through: it remembers the OSError a write raised.
    torch's zip writer reports a failed write as a RuntimeError ("unexpected pos ..."),
    which loses the errno that says the disk is full (ENOSPC)."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.f.flush()


def save_atomic(state: dict, path: str | os.PathLike) -> Path:
    """Write `state` to `path` through `<name>.tmp` (fsync, rename). If anything fails the
    .tmp file is removed: a full disk is not left fuller, and the OSError itself is raised
    (errno ENOSPC or EDQUOT when the disk or quota is full; see failures.is_disk_full)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    for stale in path.parent.glob("*.pt.tmp"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
    try:
        with open(tmp, "wb") as f:
            writer = _KeepWriteError(f)
            try:
                torch.save(state, writer)
            except RuntimeError as err:
                if writer.error is not None:
                    raise writer.error from err
                raise
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)  # make the rename itself durable
    return path


def prune(directory: str | os.PathLike, keep_last: int) -> None:
    for _, path in list_checkpoints(directory)[:-keep_last]:
        path.unlink(missing_ok=True)


def load(path: str | os.PathLike) -> dict:
    """A checkpoint's content (weights_only=True: tensors and plain data only)."""
    return load_file(path)


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
    """The state of every generator training draws from (python `random`, numpy's global
    one, torch's CPU one and, when present, every CUDA device's), as tensors and plain
    numbers only, so that a checkpoint holding it loads with weights_only=True."""
    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    states = {
        "python": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss_next": py_gauss},
        "numpy": {"bit_generator": np_kind, "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss),
                  "cached_gaussian": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()  # a list of uint8 tensors
    return states


def restore_rng_states(states: dict) -> None:
    """Set every generator back to what `rng_states` returned."""
    py = states["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss_next"]))
    n = states["numpy"]
    np.random.set_state((n["bit_generator"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
