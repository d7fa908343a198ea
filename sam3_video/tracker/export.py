"""Tracker weights in the upstream sam3.pt layout, and back.

sam3.pt holds `detector.*` (image model, including the shared vision backbone and its
tracker neck `sam2_convs`) and `tracker.*` (memory attention, memory encoder, SAM heads,
object pointers; the upstream video model's tracker has no backbone of its own). Our
TrackModel stores `backbone.*` (= sam3.pt's `detector.backbone.*`) and `tracker.*` (the same
keys as sam3.pt's), so the mapping is a prefix change.
"""
from __future__ import annotations

import torch

TRACKER_PREFIX = "tracker."
UPSTREAM_BACKBONE_PREFIX = "detector.backbone."
OWN_BACKBONE_PREFIX = "backbone."


def tracker_state_dict(model) -> dict[str, torch.Tensor]:
    """`tracker.*` keys in the upstream layout (what export writes for the tracker part).
    `model` is a TrackModel, or the state dict of one."""
    state = model if isinstance(model, dict) else model.state_dict()
    return {k: v.detach().cpu() for k, v in state.items() if k.startswith(TRACKER_PREFIX)}


def upstream_state_dict(model) -> dict[str, torch.Tensor]:
    """Everything a TrackModel holds, in the upstream layout: `tracker.*` plus the shared
    vision backbone as `detector.backbone.*`."""
    state = model if isinstance(model, dict) else model.state_dict()
    out = tracker_state_dict(state)
    out.update({UPSTREAM_BACKBONE_PREFIX + k[len(OWN_BACKBONE_PREFIX):]: v.detach().cpu()
                for k, v in state.items() if k.startswith(OWN_BACKBONE_PREFIX)})
    return out


def from_upstream_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Upstream layout -> TrackModel keys (detector keys other than the backbone are dropped)."""
    out = {k: v for k, v in state.items() if k.startswith(TRACKER_PREFIX)}
    out.update({OWN_BACKBONE_PREFIX + k[len(UPSTREAM_BACKBONE_PREFIX):]: v
                for k, v in state.items() if k.startswith(UPSTREAM_BACKBONE_PREFIX)})
    return out


def load_into_predictor(predictor, exported: dict[str, torch.Tensor]) -> None:
    """Load exported `tracker.*` weights into a backbone-less Sam3TrackerPredictor, strictly
    (the way sam3's video model holds its tracker)."""
    tracker = {k[len(TRACKER_PREFIX):]: v for k, v in exported.items() if k.startswith(TRACKER_PREFIX)}
    predictor.load_state_dict(tracker, strict=True)
