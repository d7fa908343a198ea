"""The tiny preset learns: a few AdamW steps on one batch clearly lower the loss."""
from __future__ import annotations

import torch

from .conftest import fit_losses, tiny_model


def test_tiny_model_loss_drops_within_eight_steps(clip_batch):
    losses = fit_losses(tiny_model(seed=0), clip_batch, lr=1e-3)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0], losses
