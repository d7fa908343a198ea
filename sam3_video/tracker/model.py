"""Sam3TrackerTrain: the training layer that sam3 0.1.4 lacks for its tracker.

sam3's Sam3TrackerBase holds every piece of the SAM2-style memory model (memory attention,
memory encoder, SAM heads, object pointers) but only inference entry points: its `forward`
raises NotImplementedError and its training branches read attributes `__init__` never
sets. This subclass adds those attributes, a training `track_step` with correction clicks
and per-step outputs, and a `forward` over a whole clip. It reuses the base class's own
`forward_tracking` loop unchanged.

The tracker owns no image backbone (`backbone=None`, as in sam3's video model): image
features come from the shared SAM3 backbone's tracker neck, so no backbone weight is
stored twice. `TrackModel` pairs the two.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from sam3.model.sam3_tracker_base import Sam3TrackerBase, concat_points
from sam3.model.sam3_tracker_utils import get_next_point

from sam3_video.config import TrackConfig
from sam3_video.tracker.prompts import PromptPlan, sample_prompt_plan


class Sam3TrackerTrain(Sam3TrackerBase):
    """Sam3TrackerBase plus what training needs. Build it with `backbone=None`."""

    def __init__(self, track_config: TrackConfig | None = None, **base_kwargs):
        super().__init__(**base_kwargs)
        self.track_config = track_config or TrackConfig()  # the prompt mix and correction clicks
        # Read by Sam3TrackerBase in training mode but never set by its __init__:
        # GT presence (not the predicted score) decides the no-object pointer and the
        # -1024 mask gating while training (SAM3's teacher forcing of object scores).
        self.teacher_force_obj_scores_for_mem = True
        # Spatial-memory dropout off; the base only touches `rng` when it is on.
        self.prob_to_dropout_spatial_mem = 0.0
        self.rng = np.random.default_rng(0)
        # Read by forward_tracking: corrected frames become conditioning frames (SAM2).
        self.add_all_frames_to_correct_as_cond = True
        self.iter_use_prev_mask_pred = True

    def forward(self, backbone_out: dict, images: torch.Tensor, img_ids_per_frame: list[torch.Tensor],
                gt_masks: torch.Tensor, plan: PromptPlan | None = None) -> list[dict]:
        """Track every object of a batch through its clip.

        backbone_out: tracker features of all images (`TrackModel.tracker_features`).
        images: [num_images, 3, S, S]; img_ids_per_frame[t]: [num_objects] image index of
        each object on frame t; gt_masks: bool [T, num_objects, S, S].
        Returns one output dict per frame (with the per-step predictions the loss reads).
        """
        if plan is None:
            plan = sample_prompt_plan(gt_masks, self.track_config, training=self.training)
        backbone_out = dict(backbone_out)
        backbone_out.update(plan.as_backbone_out())
        backbone_out["gt_masks_per_frame"] = {t: gt_masks[t].unsqueeze(1) for t in range(gt_masks.shape[0])}
        backbone_out["num_frames"] = gt_masks.shape[0]
        # forward_tracking indexes images per frame through `find_inputs[t].img_ids`,
        # so several objects can share one image.
        batch = SimpleNamespace(
            img_batch=images,
            find_inputs=[SimpleNamespace(img_ids=ids) for ids in img_ids_per_frame])
        return self.forward_tracking(backbone_out, batch)

    def track_step(self, frame_idx, is_init_cond_frame, current_vision_feats, current_vision_pos_embeds,
                   feat_sizes, image, point_inputs, mask_inputs, output_dict, num_frames,
                   track_in_reverse=False, run_mem_encoder=True, prev_sam_mask_logits=None,
                   use_prev_mem_frame=True, gt_masks=None, frames_to_add_correction_pt=()):
        """One frame. Accepts the base signature (the predictor calls it that way) plus the
        `gt_masks` and `frames_to_add_correction_pt` that forward_tracking passes."""
        if not self.training:
            return super().track_step(
                frame_idx, is_init_cond_frame, current_vision_feats, current_vision_pos_embeds,
                feat_sizes, image, point_inputs, mask_inputs, output_dict, num_frames,
                track_in_reverse=track_in_reverse, run_mem_encoder=run_mem_encoder,
                prev_sam_mask_logits=prev_sam_mask_logits, use_prev_mem_frame=use_prev_mem_frame)
        out = {"point_inputs": point_inputs, "mask_inputs": mask_inputs}
        high_res_features = [x.permute(1, 2, 0).view(x.size(1), x.size(2), *s)
                             for x, s in zip(current_vision_feats[:-1], feat_sizes[:-1])]
        if mask_inputs is not None:
            # A mask prompt is taken as the output; the decoder runs only for the pointer.
            pix_feat = current_vision_feats[-1].permute(1, 2, 0).view(-1, self.hidden_dim, *feat_sizes[-1])
            sam_out = self._use_mask_as_output(pix_feat, high_res_features, mask_inputs)
        else:
            pix_feat = self._prepare_memory_conditioned_features(
                frame_idx=frame_idx, is_init_cond_frame=is_init_cond_frame,
                current_vision_feats=current_vision_feats[-1:],
                current_vision_pos_embeds=current_vision_pos_embeds[-1:],
                feat_sizes=feat_sizes[-1:], output_dict=output_dict, num_frames=num_frames,
                track_in_reverse=track_in_reverse, use_prev_mem_frame=use_prev_mem_frame)
            sam_out = self._forward_sam_heads(
                backbone_features=pix_feat, point_inputs=point_inputs, mask_inputs=None,
                high_res_features=high_res_features,
                multimask_output=self._use_multimask(is_init_cond_frame, point_inputs),
                gt_masks=gt_masks)
        steps = [sam_out]
        if frame_idx in frames_to_add_correction_pt:
            # Correction clicks (SAM2): each click comes from the current error region
            # (sometimes from the GT alone), the previous low-res logits go in as the
            # mask prompt, and the heads re-decode the same memory-conditioned features.
            for _ in range(self.track_config.correction_clicks):
                low_res_mask, high_res_mask = steps[-1][3], steps[-1][4]
                from_gt = bool(torch.rand(()) < self.track_config.prob_correction_from_gt)
                points, labels = get_next_point(gt_masks, None if from_gt else high_res_mask > 0, "uniform")
                point_inputs = concat_points(point_inputs, points, labels)
                steps.append(self._forward_sam_heads(
                    backbone_features=pix_feat, point_inputs=point_inputs, mask_inputs=low_res_mask,
                    high_res_features=high_res_features,
                    multimask_output=self._use_multimask(is_init_cond_frame, point_inputs),
                    gt_masks=gt_masks))
        _, _, _, low_res_mask, high_res_mask, obj_ptr, obj_score = steps[-1]
        out.update(
            point_inputs=point_inputs, pred_masks=low_res_mask, pred_masks_high_res=high_res_mask,
            obj_ptr=obj_ptr, object_score_logits=obj_score,
            multistep_pred_multimasks_high_res=[s[1] for s in steps],
            multistep_pred_ious=[s[2] for s in steps],
            multistep_object_score_logits=[s[6] for s in steps])
        out["maskmem_features"], out["maskmem_pos_enc"] = None, None
        if run_mem_encoder and self.num_maskmem > 0:
            out["maskmem_features"], out["maskmem_pos_enc"] = self._encode_new_memory(
                image=image, current_vision_feats=current_vision_feats, feat_sizes=feat_sizes,
                pred_masks_high_res=high_res_mask, object_score_logits=obj_score,
                is_mask_from_pts=point_inputs is not None, output_dict=output_dict,
                is_init_cond_frame=is_init_cond_frame)
        return out


class TrackModel(nn.Module):
    """The shared SAM3 image backbone (with its tracker neck) plus the tracker.

    State dict: `backbone.*` (the vision backbone, laid out as in sam3's detector) and
    `tracker.*` (exactly sam3.pt's `tracker.*` layout, because the tracker holds no backbone).
    """

    def __init__(self, backbone: nn.Module, tracker: Sam3TrackerTrain, preset: str, image_size: int):
        super().__init__()
        assert tracker.backbone is None, "the tracker must not own a second backbone"
        self.backbone = backbone
        self.tracker = tracker
        self.preset, self.image_size = preset, image_size  # to build a matching predictor

    def tracker_features(self, images: torch.Tensor) -> dict:
        """Tracker-neck features of `images` [N, 3, S, S], with the SAM decoder's conv_s0/s1
        applied to the two high-res levels (what Sam3TrackerBase.forward_image does)."""
        out = self.backbone.forward_image(images)["sam2_backbone_out"]
        fpn = list(out["backbone_fpn"])
        fpn[0] = self.tracker.sam_mask_decoder.conv_s0(fpn[0])
        fpn[1] = self.tracker.sam_mask_decoder.conv_s1(fpn[1])
        return {"backbone_fpn": fpn, "vision_pos_enc": list(out["vision_pos_enc"]),
                "vision_features": fpn[-1]}

    def forward(self, images, img_ids_per_frame, gt_masks, plan: PromptPlan | None = None):
        return self.tracker(self.tracker_features(images), images, img_ids_per_frame, gt_masks, plan)
