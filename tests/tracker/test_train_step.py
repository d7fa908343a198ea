"""One training step of the tiny tracker for each prompt type, on real synthetic clips."""
from __future__ import annotations

import math

import pytest
import torch

from sam3_video.tracker.loss import MultiStepMultiMaskLoss
from sam3_video.tracker.prompts import sample_prompt_plan

# Parts the memory path must train: a training step's gradients reach all of them.
MEMORY_PARTS = ("tracker.transformer.", "tracker.maskmem_backbone.", "tracker.obj_ptr_proj.")


def grad_fraction(model, prefix: str) -> float:
    params = [p for n, p in model.named_parameters() if n.startswith(prefix)]
    assert params, prefix
    reached = [p for p in params if p.grad is not None and p.grad.abs().sum() > 0]
    return len(reached) / len(params)


@pytest.mark.parametrize("kind", ["mask", "box", "click"])
def test_one_step_per_prompt_type(tiny_model, clip_batch, kind):
    torch.manual_seed(1)
    b = clip_batch
    plan = sample_prompt_plan(b.masks, tiny_model.tracker.track_config, kind=kind)
    outputs = tiny_model(b.images, list(b.img_ids), b.masks, plan)
    losses = MultiStepMultiMaskLoss()(outputs, b.masks)
    losses["loss"].backward()

    assert len(outputs) == b.masks.shape[0]
    for name, value in losses.items():
        assert math.isfinite(float(value)), name
    assert float(losses["loss"]) > 0
    for part in MEMORY_PARTS:
        assert grad_fraction(tiny_model, part) == 1.0, part
    assert tiny_model.tracker.maskmem_tpos_enc.grad.abs().sum() > 0
    # The shared trunk is frozen; the tracker neck learns.
    assert all(p.grad is None for p in tiny_model.backbone.vision_backbone.trunk.parameters())
    assert grad_fraction(tiny_model, "backbone.vision_backbone.sam2_convs.0.") == 1.0

    steps_per_frame = [len(out["multistep_pred_ious"]) for out in outputs]
    if kind == "mask":
        assert steps_per_frame == [1] * len(outputs)
    else:
        # Correction clicks: 1 + 7 decoder steps on every corrected frame, 1 elsewhere.
        corrections = tiny_model.tracker.track_config.correction_clicks
        assert 0 in plan.correction_frames
        assert steps_per_frame == [1 + corrections if t in plan.correction_frames else 1
                                   for t in range(len(outputs))]


def test_click_corrections_add_points(tiny_model, clip_batch):
    b = clip_batch
    plan = sample_prompt_plan(b.masks, tiny_model.tracker.track_config, kind="click")
    outputs = tiny_model(b.images, list(b.img_ids), b.masks, plan)
    first = outputs[0]["point_inputs"]
    # One initial click plus one per correction step, for every object.
    assert first["point_coords"].shape[:2] == (b.masks.shape[1], 1 + 7)
    assert set(first["point_labels"].unique().tolist()) <= {0, 1}


def test_box_prompt_is_two_corner_points(tiny_model, clip_batch):
    plan = sample_prompt_plan(clip_batch.masks, tiny_model.tracker.track_config, kind="box")
    labels = plan.point_inputs[0]["point_labels"]
    assert labels.tolist() == [[2, 3]] * clip_batch.masks.shape[1]


def test_training_steps_lower_the_loss_on_a_fixed_clip(tiny_model, clip_batch):
    b = clip_batch
    opt = torch.optim.AdamW([p for p in tiny_model.parameters() if p.requires_grad], lr=1e-3)
    plan = sample_prompt_plan(b.masks, tiny_model.tracker.track_config, kind="mask")
    loss_fn = MultiStepMultiMaskLoss()
    values = []
    for _ in range(6):
        loss = loss_fn(tiny_model(b.images, list(b.img_ids), b.masks, plan), b.masks)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(float(loss))
    assert values[-1] < 0.8 * values[0], values
