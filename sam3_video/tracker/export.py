"""Tracker weights in the upstream sam3.pt layout, and into sam3's predictor.

Our TrackModel stores `backbone.*` (= sam3.pt's `detector.backbone.*`) and `tracker.*` (the
same keys as sam3.pt's; the upstream tracker owns no backbone either), so the mapping is a
prefix change, sam3_video.weights' `to_upstream_layout` / `track_model_weights`.
"""
from __future__ import annotations

import torch

from sam3_video.lora import merged_state_dict
from sam3_video.weights import TRACKER_PREFIX, to_upstream_layout


def tracker_state_dict(model) -> dict[str, torch.Tensor]:
    """`tracker.*` keys in the upstream layout (what export writes for the tracker part).
    `model` is a TrackModel (with LoRA adapters: merged, the model left as it is), or the
    state dict of one."""
    state = model if isinstance(model, dict) else merged_state_dict(model)
    return {k: v.detach().cpu() for k, v in state.items() if k.startswith(TRACKER_PREFIX)}


def upstream_state_dict(model) -> dict[str, torch.Tensor]:
    """Everything a TrackModel holds, in the upstream layout: `tracker.*` plus the shared
    vision backbone as `detector.backbone.*`."""
    return to_upstream_layout(model if isinstance(model, dict) else merged_state_dict(model))


def load_into_predictor(predictor, exported: dict[str, torch.Tensor]) -> None:
    """Load exported `tracker.*` weights into a backbone-less Sam3TrackerPredictor, strictly
    (the way sam3's video model holds its tracker)."""
    tracker = {k[len(TRACKER_PREFIX):]: v for k, v in exported.items() if k.startswith(TRACKER_PREFIX)}
    predictor.load_state_dict(tracker, strict=True)
