"""What is wrong with a dataset, said so that a person can find it: file, record, message."""
from __future__ import annotations

from dataclasses import dataclass

from sam3_video.config import ConfigError


@dataclass(frozen=True)
class Problem:
    file: str     # relative to the dataset root, e.g. "annotations.json", "JPEGImages/v1/00003.jpg"
    record: str   # where in the file, e.g. "annotations[12].segmentations[4]"; "" for the whole file
    message: str

    def __str__(self) -> str:
        where = f"{self.file} {self.record}" if self.record else self.file
        return f"{where}: {self.message}"


class DatasetError(ConfigError):
    """A dataset cannot be used. A ConfigError, so the trainer exits with CONFIG_ERROR (2)."""

    def __init__(self, problems: list[Problem]):
        self.dataset_problems = problems
        super().__init__([str(p) for p in problems])
