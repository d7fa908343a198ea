"""The tracker's multi-step multi-mask loss (SAM2's MultiStepMultiMasksAndIous), built from
sam3's own loss pieces.

For every frame and every click step: focal x20 and dice x1 on the best of the predicted
masks (lowest 20*focal + dice), L1 between predicted and actual IoU on all masks, and a
binary cross-entropy on the object score. Mask terms are zero where the object is absent.
Everything is summed over objects and click steps, divided by the number of objects, and
averaged over the clip's frames (SAM2 sums over frames; the mean keeps the loss scale, and
so what the fixed grad clip does, independent of frames_per_clip; the detector's loss is
averaged the same way).
"""
from __future__ import annotations

import torch
from torch import nn

from sam3.train.loss.loss_fns import dice_loss, iou_loss, sigmoid_focal_loss

DEFAULT_WEIGHTS = {"loss_mask": 20.0, "loss_dice": 1.0, "loss_iou": 1.0, "loss_class": 1.0}


class MultiStepMultiMaskLoss(nn.Module):
    def __init__(self, weights: dict[str, float] | None = None, focal_alpha: float = 0.25,
                 focal_gamma: float = 2.0):
        super().__init__()
        self.weights = dict(weights or DEFAULT_WEIGHTS)
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma

    def forward(self, frame_outputs: list[dict], gt_masks: torch.Tensor) -> dict[str, torch.Tensor]:
        """frame_outputs: Sam3TrackerTrain's per-frame outputs; gt_masks: bool [T, N, S, S].
        Returns {"loss": weighted sum, "loss_mask", "loss_dice", "loss_iou", "loss_class"}."""
        num_objects = max(gt_masks.shape[1], 1)
        totals = {name: gt_masks.new_zeros((), dtype=torch.float32) for name in self.weights}
        for out, target in zip(frame_outputs, gt_masks):
            target = target.unsqueeze(1).float()                       # [N, 1, S, S]
            present = target.flatten(1).any(-1, keepdim=True).float()  # [N, 1]
            for masks, ious, obj_logits in zip(out["multistep_pred_multimasks_high_res"],
                                               out["multistep_pred_ious"],
                                               out["multistep_object_score_logits"]):
                step = self._one_step(masks.float(), ious.float(), obj_logits.float(), target, present,
                                      num_objects)
                for name, value in step.items():
                    totals[name] = totals[name] + value
        frames = max(len(frame_outputs), 1)
        totals = {name: value / frames for name, value in totals.items()}
        totals["loss"] = sum(totals[name] * w for name, w in self.weights.items())
        return totals

    def _one_step(self, masks, ious, obj_logits, target, present, num_objects):
        targets = target.expand_as(masks)                                # [N, M, S, S]
        # triton=False: sam3's default Triton kernels do not run on a CPU.
        focal = sigmoid_focal_loss(masks, targets, num_objects, alpha=self.focal_alpha,
                                   gamma=self.focal_gamma, loss_on_multimask=True, triton=False)
        dice = dice_loss(masks, targets, num_objects, loss_on_multimask=True)
        iou = iou_loss(masks, targets, ious, num_objects, loss_on_multimask=True, use_l1_loss=True)
        # alpha=-1, gamma=0: plain binary cross-entropy on object presence.
        obj = sigmoid_focal_loss(obj_logits, present, num_objects, alpha=-1, gamma=0.0, triton=False)
        if focal.size(1) > 1:  # several candidate masks: supervise the best one
            best = (focal * self.weights["loss_mask"] + dice * self.weights["loss_dice"]).argmin(-1)
            rows = torch.arange(focal.size(0), device=focal.device)
            focal, dice = focal[rows, best][:, None], dice[rows, best][:, None]
        iou = iou.mean(-1, keepdim=True)  # IoU prediction supervised on every mask
        return {"loss_mask": (focal * present).sum(), "loss_dice": (dice * present).sum(),
                "loss_iou": (iou * present).sum(), "loss_class": obj}
