"""The tiny preset learns: a few AdamW steps on one batch clearly lower the loss."""
from __future__ import annotations

import torch

from sam3_video.backbone.presets import TINY
from sam3_video.detector.loss import build_detection_loss

from .conftest import tiny_model


def test_tiny_model_loss_drops_within_eight_steps(clip_batch):
    model = tiny_model(seed=0)
    loss_fn = build_detection_loss(TINY.num_queries, distributed=False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(8):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(clip_batch), clip_batch)["core_loss"]
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0], losses
