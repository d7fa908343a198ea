"""The multi-step multi-mask loss on hand-made predictions (no model needed)."""
from __future__ import annotations

import torch

from sam3_video.tracker.loss import MultiStepMultiMaskLoss

S = 16


def frame_output(masks: torch.Tensor, ious: torch.Tensor, obj_logit: float) -> dict:
    """One frame, one step: masks [N, M, S, S] logits, ious [N, M]."""
    n = masks.shape[0]
    return {"multistep_pred_multimasks_high_res": [masks], "multistep_pred_ious": [ious],
            "multistep_object_score_logits": [torch.full((n, 1), obj_logit)]}


def square_gt() -> torch.Tensor:
    gt = torch.zeros(1, 1, S, S, dtype=torch.bool)  # [T=1, N=1, S, S]
    gt[0, 0, 4:10, 4:10] = True
    return gt


def logits_of(mask: torch.Tensor) -> torch.Tensor:
    return mask.float() * 40 - 20


def test_mask_terms_use_the_best_candidate():
    gt = square_gt()
    perfect = logits_of(gt[0, 0])
    wrong = logits_of(~gt[0, 0])
    loss = MultiStepMultiMaskLoss()
    best_only = loss([frame_output(perfect[None, None], torch.ones(1, 1), 10.0)], gt)
    with_bad = loss([frame_output(torch.stack([wrong, perfect, wrong])[None], torch.ones(1, 3), 10.0)], gt)
    assert float(best_only["loss_mask"]) < 1e-6
    assert torch.allclose(with_bad["loss_mask"], best_only["loss_mask"])
    assert torch.allclose(with_bad["loss_dice"], best_only["loss_dice"])
    # The IoU head is supervised on every candidate: predicted 1 vs actual 0 on two of three.
    assert abs(float(with_bad["loss_iou"]) - 2 / 3) < 1e-5


def test_absent_object_has_only_the_object_score_loss():
    gt = torch.zeros(1, 1, S, S, dtype=torch.bool)
    masks = torch.randn(1, 3, S, S)
    absent = MultiStepMultiMaskLoss()([frame_output(masks, torch.rand(1, 3), 3.0)], gt)
    assert float(absent["loss_mask"]) == 0 and float(absent["loss_dice"]) == 0
    assert float(absent["loss_iou"]) == 0
    assert float(absent["loss_class"]) > 3.0  # BCE of logit 3 against "absent"
    assert torch.allclose(absent["loss"], absent["loss_class"])


def test_steps_add_up_and_objects_normalise():
    gt = square_gt()
    masks = torch.randn(1, 1, S, S)
    one = frame_output(masks, torch.rand(1, 1), 0.5)
    two_steps = {k: v * 2 for k, v in one.items()}
    loss = MultiStepMultiMaskLoss()
    single, double = loss([one], gt), loss([two_steps], gt)
    assert torch.allclose(double["loss"], 2 * single["loss"])
    # Two identical objects: the sum over objects divided by their number is unchanged.
    both = frame_output(masks.expand(2, -1, -1, -1), one["multistep_pred_ious"][0].expand(2, -1), 0.5)
    assert torch.allclose(loss([both], gt.expand(-1, 2, -1, -1))["loss"], single["loss"], atol=1e-5)


def test_frames_are_averaged_not_summed():
    """Issue 12, defect 5: a clip of T equal frames has the loss of one frame, so the loss
    scale (and what the fixed grad clip does) does not grow with frames_per_clip."""
    gt = square_gt()
    one = frame_output(torch.randn(1, 1, S, S), torch.rand(1, 1), 0.5)
    loss = MultiStepMultiMaskLoss()
    single = loss([one], gt)
    for frames in (2, 5):
        clip = loss([one] * frames, gt.expand(frames, -1, -1, -1))
        for name in single:
            assert torch.allclose(clip[name], single[name]), name
