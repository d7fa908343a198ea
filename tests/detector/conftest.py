"""Fixtures for the model tests: a tiny synthetic video dataset (the data package's own
generator, loader and collator) and tiny models. CPU, 2 threads, fp32."""
from __future__ import annotations

import pytest
import torch

from sam3_video.backbone.presets import default_image_size
from sam3_video.config import ModelConfig
from sam3_video.data import collate, make_video_dataset, write_synthetic
from sam3_video.detector.build import build_model

FRAMES = 4


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic(root, videos=3, frames=6, seed=3)
    return root


@pytest.fixture(scope="session")
def clip_batch(synthetic_root):
    """2 clips x 4 frames, each with its own noun phrase."""
    dataset = make_video_dataset(synthetic_root, image_size=default_image_size("tiny"),
                                 frames_per_clip=FRAMES)
    dataset.set_curr_epoch(0)
    return collate([dataset[0], dataset[1]])


def tiny_model(seed: int = 0, **model_fields) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelConfig(preset="tiny", **model_fields))
