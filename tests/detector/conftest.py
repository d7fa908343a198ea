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


def fit_losses(model: torch.nn.Module, batch, lr: float, steps: int = 8) -> list[float]:
    """The detection loss of `batch` at each of `steps` AdamW steps on it (trainable params)."""
    from sam3_video.backbone.presets import TINY
    from sam3_video.detector.loss import build_detection_loss

    loss_fn = build_detection_loss(TINY.num_queries, distributed=False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(batch), batch)["core_loss"]
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
