"""Rank 0's metric sink: RUN_DIR/metrics.jsonl (one flushed JSON object per line, the
contract the worker tails) plus TensorBoard event files in RUN_DIR/tb.

On other ranks a MetricsLog is created with enabled=False and every call is a no-op, so
the training loop needs no `if rank == 0` around logging.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from sam3_video.run_layout import METRICS_FILE, TENSORBOARD_DIR


class MetricsLog:
    def __init__(self, run_dir: str | os.PathLike, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / METRICS_FILE
        self._file = None
        self._tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", buffering=1)  # line-buffered: one flush per line
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / TENSORBOARD_DIR))

    def write(self, step: int, values: dict[str, float], **extra) -> dict | None:
        """Append {"step", "time", **extra, **values}; numbers go to TensorBoard as scalars."""
        if not self.enabled:
            return None
        record = {"step": int(step), "time": time.time(), **extra}
        for key, value in values.items():
            value = float(value)
            # JSON has no NaN/inf; null keeps the line parseable and the problem visible.
            record[key] = value if math.isfinite(value) else None
            if self._tb is not None and math.isfinite(value):
                self._tb.add_scalar(key, value, step)
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        return record

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # the last line may be half-written while the trainer runs
    return lines
