"""Fixtures for the tracker tests: small synthetic datasets (real files in the native
format) and a tiny TrackModel built from sam3's own classes."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sam3_video.data import write_synthetic
from sam3_video.tracker.build import build_track_model, set_trainable
from sam3_video.tracker.clips import TrackClips, collate_clips

IMAGE_SIZE = 112


@pytest.fixture(scope="session")
def clips_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tracker-data")
    write_synthetic(root / "train", videos=3, frames=5, seed=0)
    write_synthetic(root / "val", videos=2, frames=5, seed=1)
    return root


@pytest.fixture
def tiny_model():
    torch.set_num_threads(1)  # tiny ops: threads only add overhead, worse on a shared CPU
    torch.manual_seed(0)
    model = build_track_model("tiny", IMAGE_SIZE)
    set_trainable(model)
    return model.train()


@pytest.fixture
def clip_batch(clips_root):
    """Two clips of 4 frames; video 0's distractor is absent on its first frames."""
    torch.manual_seed(0)
    clips = TrackClips(clips_root / "train", IMAGE_SIZE, frames_per_clip=4, max_objects=2)
    return collate_clips([clips[0], clips[1]])
