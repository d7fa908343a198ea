"""The detection loss of the upstream roboflow fine-tune config, built from sam3's classes.

Sam3LossWrapper with a one-to-one Hungarian matcher and a one-to-many (DAC) matcher,
box (L1 + GIoU), classification + presence (IABCEMdetr), mask (focal + dice) and
semantic-seg losses. Every frame (find stage) gets the loss upstream computes for one
image batch (normalised by that frame's number of target boxes); the loss of a clip batch
and every logged component is the MEAN over its frames, so the loss scale does not grow
with frames_per_clip against a fixed grad clip and fractions (presence_dec_acc, ce_f1)
stay within 0..1. (Sam3LossWrapper sums over stages; its normalize_by_stage_num divides
only the core loss, not the components.)
"""
from __future__ import annotations

import torch
from sam3.model.data_misc import BatchedDatapoint
from sam3.model.model_misc import SAM3Output
from sam3.model.sam3_image import Sam3Image
from sam3.train.loss.loss_fns import CORE_LOSS_KEY, Boxes, IABCEMdetr, Masks
from sam3.train.loss.sam3_loss import Sam3LossWrapper
from sam3.train.matcher import BinaryHungarianMatcherV2, BinaryOneToManyMatcher

from sam3_video import compat

__all__ = ["CORE_LOSS_KEY", "DetectionLoss", "build_detection_loss", "build_matcher"]


def build_matcher() -> BinaryHungarianMatcherV2:
    """The one-to-one matcher of sam3.model_builder and the roboflow config."""
    return BinaryHungarianMatcherV2(focal=True, cost_class=2.0, cost_bbox=5.0, cost_giou=2.0,
                                    alpha=0.25, gamma=2, stable=False)


class DetectionLoss:
    """`loss(outputs, batch) -> {"core_loss": total, "<component>": value, ...}`."""

    def __init__(self, wrapper: Sam3LossWrapper):
        self.wrapper = wrapper

    def __call__(self, outputs: SAM3Output, batch: BatchedDatapoint) -> dict[str, torch.Tensor]:
        # back_convert reads no instance state: it only repacks a BatchedFindTarget as the
        # dict the loss functions index by name.
        targets = [Sam3Image.back_convert(None, t) for t in batch.find_targets]
        frames = len(targets) if outputs.loss_stages is None else len(outputs.loss_stages)
        summed = self.wrapper(outputs, targets)  # the sum over frames of the per-frame losses
        return {name: value / frames for name, value in summed.items()}


def build_detection_loss(num_queries: int, distributed: bool) -> DetectionLoss:
    """`num_queries`: the decoder's query count (IABCEMdetr pads to it). `distributed`:
    several processes share the batch (normalise by the box count over all of them)."""
    compat.install_cpu_focal_loss()
    loss_fns = [
        Boxes(weight_dict={"loss_bbox": 5.0, "loss_giou": 2.0}),
        IABCEMdetr(weak_loss=False, weight_dict={"loss_ce": 20.0, "presence_loss": 20.0},
                   pos_weight=10.0, alpha=0.25, gamma=2, use_presence=True, pos_focal=False,
                   pad_n_queries=num_queries, pad_scale_pos=1.0),
        Masks(focal_alpha=0.25, focal_gamma=2.0,
              weight_dict={"loss_mask": 200.0, "loss_dice": 10.0}, compute_aux=False),
    ]
    wrapper = Sam3LossWrapper(
        loss_fns_find=loss_fns,
        matcher=build_matcher(),
        o2m_weight=2.0,
        o2m_matcher=BinaryOneToManyMatcher(alpha=0.3, threshold=0.4, topk=4),
        use_o2m_matcher_on_o2m_aux=False,
        loss_fn_semantic_seg=compat.semantic_seg_criterion(),
        scale_by_find_batch_size=True,
        normalization=compat.loss_normalization(distributed),
    )
    return DetectionLoss(wrapper)
