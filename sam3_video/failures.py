"""How the trainer and the evaluator turn an exception into an exit code, so the worker
can classify a failure (sam3_video.exit_codes) from the code alone."""
from __future__ import annotations

import errno
import sys

import torch

from sam3_video import exit_codes
from sam3_video.config import ConfigError


def is_out_of_memory(err: BaseException) -> bool:
    """CUDA OOM raises torch.OutOfMemoryError; the CPU allocator a plain RuntimeError."""
    if isinstance(err, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(err, RuntimeError) and (
        "can't allocate memory" in str(err) or "out of memory" in str(err))


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(err: BaseException) -> bool:
    """An OSError saying the disk (or the user's quota) is full, raised or wrapped."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS:
            return True
        err = err.__cause__ or err.__context__
    return False


def report_failure(err: BaseException) -> int | None:
    """Print what went wrong and return its exit code; None for anything else (re-raise it:
    a traceback and a non-zero code mean infrastructure)."""
    if isinstance(err, ConfigError):  # e.g. initial weights that do not fit the model
        print("configuration error:\n  " + "\n  ".join(err.problems), file=sys.stderr)
        return exit_codes.CONFIG_ERROR
    if is_out_of_memory(err):
        print(f"out of memory: {err}", file=sys.stderr)
        return exit_codes.OUT_OF_MEMORY
    if is_disk_full(err):
        print(f"disk full: {err}", file=sys.stderr)
        return exit_codes.DISK_FULL
    return None
