"""The `sam3` preset's tracker has exactly the upstream tracker's tensors, so the tracker.*
keys of an upstream sam3.pt load into it (and our export loads back into sam3)."""
from __future__ import annotations

import torch

from sam3 import model_builder
from sam3_video.tracker.build import tracker_kwargs
from sam3_video.tracker.model import Sam3TrackerTrain


def shapes(module: torch.nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_sam3_tracker_matches_upstream_layout():
    torch.manual_seed(0)
    tracker = Sam3TrackerTrain(**tracker_kwargs("sam3", 1008))
    # Upstream's own memory-attention builder runs on a CPU (its memory encoder builder
    # does not: it precomputes position encodings on "cuda").
    upstream_attention = model_builder._create_tracker_transformer()
    assert shapes(tracker.transformer) == shapes(upstream_attention)
    assert tracker.mem_dim == 64 and tracker.hidden_dim == 256 and tracker.num_maskmem == 7
    assert tracker.image_size == 1008 and tracker.sam_image_embedding_size == 72
    # The full upstream tracker (sam3.pt's tracker.* tensors) is 11.7 M parameters.
    n = sum(p.numel() for p in tracker.parameters())
    assert 11.6e6 < n < 11.8e6, n
    assert not any(k.startswith("backbone") for k in tracker.state_dict())
