"""Fixtures for the dataset tests: a small synthetic dataset and editable copies of it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sam3_video.data import write_synthetic

SMALL = dict(videos=3, frames=6, seed=0, height=48, width=64)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """Read-only: tests that change files use `dataset_copy`."""
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic(root, **SMALL)
    return root


class DatasetCopy:
    def __init__(self, root: Path):
        self.root = root
        self.ann_file = root / "annotations.json"

    def load(self) -> dict:
        return json.loads(self.ann_file.read_text())

    def save(self, data: dict) -> None:
        self.ann_file.write_text(json.dumps(data))

    def edit(self, change) -> None:
        """change(data) mutates the parsed annotations in place."""
        data = self.load()
        change(data)
        self.save(data)


@pytest.fixture
def dataset_copy(synthetic_root, tmp_path) -> DatasetCopy:
    root = tmp_path / "dataset"
    shutil.copytree(synthetic_root, root)
    return DatasetCopy(root)
