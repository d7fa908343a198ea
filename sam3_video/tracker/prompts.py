"""Prompt sampling for one training clip, SAM2-style.

Once per batch: a mask (taken as the output), a noisy box, or one click on the
conditioning frames (frame 0 plus up to `max_cond_frames - 1` random frames); click and box
clips also get correction clicks on 1..`max_correction_frames` frames, always including
the conditioning frames. The mix and the counts are the job's `track` section
(sam3_video.config.TrackConfig). Randomness comes from torch's global generator, so the
trainer's saved RNG state makes a resumed run sample the same prompts.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sam3.model.sam3_tracker_utils import get_next_point, sample_box_points

from sam3_video.config import TrackConfig


@dataclass
class PromptPlan:
    kind: str                                   # "mask" | "box" | "click"
    cond_frames: list[int]
    correction_frames: list[int] = field(default_factory=list)
    mask_inputs: dict[int, torch.Tensor] = field(default_factory=dict)    # t -> [N,1,S,S]
    point_inputs: dict[int, dict] = field(default_factory=dict)           # t -> coords/labels
    num_frames: int = 0

    def as_backbone_out(self) -> dict:
        """The keys Sam3TrackerBase.forward_tracking reads."""
        return {
            "init_cond_frames": list(self.cond_frames),
            "frames_not_in_init_cond": [t for t in range(self.num_frames) if t not in self.cond_frames],
            "frames_to_add_correction_pt": list(self.correction_frames),
            "mask_inputs_per_frame": self.mask_inputs,
            "point_inputs_per_frame": self.point_inputs,
        }


def _randint(low: int, high: int) -> int:
    """Uniform integer in [low, high]."""
    return int(torch.randint(low, high + 1, ()).item())


def _random_subset(pool: list[int], k: int) -> list[int]:
    return [pool[i] for i in torch.randperm(len(pool))[:k].tolist()]


def first_frame_mask_plan(gt_masks: torch.Tensor) -> PromptPlan:
    """Semi-supervised VOS: the GT mask on frame 0, nothing else (evaluation)."""
    return PromptPlan(kind="mask", cond_frames=[0], mask_inputs={0: gt_masks[0].unsqueeze(1)},
                      num_frames=gt_masks.shape[0])


def sample_prompt_plan(gt_masks: torch.Tensor, settings: TrackConfig, training: bool = True,
                       kind: str | None = None) -> PromptPlan:
    """gt_masks: bool [T, N, S, S]. `kind` forces the prompt type (tests, benchmarks)."""
    if not training:
        return first_frame_mask_plan(gt_masks)
    T = gt_masks.shape[0]
    if kind is None:
        u = float(torch.rand(()))
        kind = "mask" if u < settings.prob_mask else "box" if u < settings.prob_mask + settings.prob_box else "click"
    # At least one frame is left to track: a clip of only mask-prompted frames has no loss
    # with a gradient (their output is the prompt itself).
    n_cond = _randint(1, max(1, min(settings.max_cond_frames, T - 1)))
    cond = [0] + sorted(_random_subset(list(range(1, T)), n_cond - 1))
    plan = PromptPlan(kind=kind, cond_frames=cond, num_frames=T)
    for t in cond:
        frame_masks = gt_masks[t].unsqueeze(1)
        if kind == "mask":
            plan.mask_inputs[t] = frame_masks
        elif kind == "box":
            coords, labels = sample_box_points(frame_masks)
            plan.point_inputs[t] = {"point_coords": coords, "point_labels": labels}
        else:
            coords, labels = get_next_point(frame_masks, None, "uniform")
            plan.point_inputs[t] = {"point_coords": coords, "point_labels": labels}
    if kind != "mask" and settings.correction_clicks > 0 and settings.max_correction_frames > 0:
        n_correct = max(n_cond, min(settings.max_correction_frames, T))
        n_correct = _randint(n_cond, n_correct)
        rest = [t for t in range(T) if t not in cond]
        plan.correction_frames = cond + sorted(_random_subset(rest, n_correct - n_cond))
    return plan
