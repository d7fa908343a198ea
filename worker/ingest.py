"""Read what the trainer writes into RUN_DIR, incrementally and without double counting.

- MetricsTail: new complete lines of metrics.jsonl since the last read (byte offset; a
  partial last line waits for its newline).
- CheckpointScanner: checkpoint files not registered yet, with size and sha256.
- StepRate: an ETA from the recent step times.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from sam3_video.run_layout import CHECKPOINT_NAME

log = logging.getLogger(__name__)

# Keys of a metrics line that are not metrics themselves.
NOT_METRICS = {"step", "time", "phase"}


class MetricsTail:
    def __init__(self, path: Path, offset: int = 0):
        self.path = path
        self.offset = offset
        self.partial = b""

    def read_new(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                size = f.seek(0, 2)
                if size < self.offset:  # the file was replaced or truncated: start over
                    self.offset, self.partial = 0, b""
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        *lines, self.partial = (self.partial + chunk).split(b"\n")
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s: skipping a line that is not JSON: %.200r", self.path, line)
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                records.append(record)
            else:
                log.warning("%s: skipping a line without an integer step: %.200r", self.path, line)
        return records


def metric_rows(record: dict) -> list[tuple[str, int, float, float]]:
    """One (name, step, value, time) row per numeric key of a metrics line."""
    step, when = record["step"], float(record.get("time", 0.0))
    return [(name, step, float(value), when) for name, value in record.items()
            if name not in NOT_METRICS and isinstance(value, (int, float))
            and not isinstance(value, bool)]


def sha256_of(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class CheckpointFile:
    name: str
    step: int
    size_bytes: int
    sha256: str
    path: Path


class CheckpointScanner:
    def __init__(self, checkpoint_dir: Path):
        self.dir = checkpoint_dir
        self.seen: set[str] = set()

    def new_files(self) -> list[CheckpointFile]:
        """Checkpoints that appeared since the last call, oldest first. The trainer
        writes *.tmp and renames, so a file with the final name is complete."""
        found = []
        try:
            names = sorted(p.name for p in self.dir.iterdir())
        except FileNotFoundError:
            return []
        for name in names:
            match = CHECKPOINT_NAME.match(name)
            if not match or name in self.seen:
                continue
            path = self.dir / name
            try:
                size, digest = path.stat().st_size, sha256_of(path)
            except FileNotFoundError:  # rotated away (keep_last) before we got to it
                continue
            self.seen.add(name)
            found.append(CheckpointFile(name, int(match.group(1)), size, digest, path))
        return found


class StepRate:
    """Seconds per step over the last `window` training lines -> ETA."""

    def __init__(self, window: int = 20):
        self.points: deque[tuple[float, int]] = deque(maxlen=window)

    def add(self, step: int, when: float) -> None:
        if self.points and step <= self.points[-1][1]:
            self.points.clear()  # a resumed run starts over at an earlier step
        self.points.append((when, step))

    def eta_seconds(self, max_steps: int | None) -> float | None:
        if max_steps is None or len(self.points) < 2:
            return None
        (t0, s0), (t1, s1) = self.points[0], self.points[-1]
        if s1 <= s0 or t1 <= t0:
            return None
        eta = (max_steps - s1) * (t1 - t0) / (s1 - s0)
        return max(0.0, eta) if math.isfinite(eta) else None
