"""VideoSam3: SAM3's detector trained on clips of T frames.

Upstream Sam3Image.forward asserts one frame. Here a batch holds several clips; the
collator turns frame t of every clip into "find stage" t. Two forward paths give the same
outputs:

- `forward`: the backbone runs once over all frames, the text encoder once, and the fusion
  encoder, decoder and segmentation head run ONCE over the queries of every frame of every
  clip (stages stacked along the batch axis; each query picks its frame by img_ids). The
  result is split back into one output per frame, matched to that frame's targets.
- `forward_per_frame`: the reference loop of sam3 issue 318, one upstream
  forward_grounding call per frame.

Both return a SAM3Output with one stage per frame, which Sam3LossWrapper zips with
batch.find_targets, so the loss (normalised per frame, averaged over frames) is the same.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

import torch
from sam3.model.data_misc import BatchedDatapoint, FindStage
from sam3.model.geometry_encoders import Prompt
from sam3.model.model_misc import SAM3Output
from sam3.model.sam3_image import Sam3Image

from sam3_video import compat

# Per-query outputs (batch axis first) that the loss reads; also inside aux_outputs.
_PER_QUERY_KEYS = (
    "pred_logits", "pred_boxes", "pred_boxes_xyxy", "pred_masks", "presence_logit_dec",
    "pred_logits_o2m", "pred_boxes_o2m", "pred_boxes_xyxy_o2m", "pred_masks_o2m",
    "semantic_seg", "presence_logit", "queries",
)


def stack_find_stages(stages: list[FindStage]) -> FindStage:
    """One FindStage holding the queries of every stage (frame), stage after stage."""
    max_boxes = max(s.input_boxes.shape[0] for s in stages)

    def pad_boxes(s: FindStage):
        missing = max_boxes - s.input_boxes.shape[0]
        boxes, label, mask = s.input_boxes, s.input_boxes_label, s.input_boxes_mask
        if missing:  # padding boxes are masked out (mask True = padding)
            boxes = torch.cat([boxes, boxes.new_zeros(missing, *boxes.shape[1:])], 0)
            label = torch.cat([label, label.new_zeros(missing, *label.shape[1:])], 0)
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], missing)], 1)
        return boxes, label, mask

    max_points = max(s.input_points.shape[1] for s in stages)

    def pad_points(s: FindStage):
        missing = max_points - s.input_points.shape[1]
        points, mask = s.input_points, s.input_points_mask
        if missing:  # [queries, points, dim]; padding points are masked out
            points = torch.cat([points, points.new_zeros(points.shape[0], missing, *points.shape[2:])], 1)
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], missing)], 1)
        return points, mask

    padded = [pad_boxes(s) for s in stages]
    padded_points = [pad_points(s) for s in stages]
    object_ids = None
    if all(s.object_ids is not None for s in stages):
        object_ids = [ids for s in stages for ids in s.object_ids]
    return FindStage(
        img_ids=torch.cat([s.img_ids for s in stages]),
        text_ids=torch.cat([s.text_ids for s in stages]),
        input_boxes=torch.cat([p[0] for p in padded], dim=1),        # [boxes, queries, 4]
        input_boxes_label=torch.cat([p[1] for p in padded], dim=1),  # [boxes, queries]
        input_boxes_mask=torch.cat([p[2] for p in padded], dim=0),   # [queries, boxes]
        input_points=torch.cat([p[0] for p in padded_points], dim=0),     # [queries, points, dim]
        input_points_mask=torch.cat([p[1] for p in padded_points], dim=0),  # [queries, points]
        object_ids=object_ids,
    )


def split_frames(batch: BatchedDatapoint, frames: int | None) -> Iterator[tuple[int, BatchedDatapoint]]:
    """(first frame, sub-batch) for consecutive runs of at most `frames` frames (find
    stages) of `batch`: each sub-batch holds only the images its stages use, their img_ids
    renumbered. None (or a run as long as the clip) yields the batch itself. The detector
    treats every frame on its own, so the outputs of the parts are those of the whole.
    Split on the CPU: only a part's images then go to the device."""
    total = len(batch.find_inputs)
    if frames is None or frames >= total:
        yield 0, batch
        return
    for start in range(0, total, frames):
        stages = batch.find_inputs[start:start + frames]
        used = torch.unique(torch.cat([s.img_ids for s in stages]))  # sorted
        local = torch.full((batch.img_batch.shape[0],), -1, dtype=torch.long, device=used.device)
        local[used] = torch.arange(len(used), device=used.device)
        yield start, dataclasses.replace(
            batch, img_batch=batch.img_batch[used.to(batch.img_batch.device)],
            find_inputs=[dataclasses.replace(s, img_ids=local[s.img_ids]) for s in stages],
            find_targets=batch.find_targets[start:start + frames],
            find_metadatas=batch.find_metadatas[start:start + frames],
            raw_images=None if batch.raw_images is None else [batch.raw_images[i] for i in used.tolist()])


def _slice_queries(out: dict, start: int, stop: int) -> dict:
    """The per-query outputs of queries [start, stop) (aux outputs included)."""
    part = {k: (None if out[k] is None else out[k][start:stop]) for k in _PER_QUERY_KEYS if k in out}
    if "aux_outputs" in out:
        part["aux_outputs"] = [_slice_queries(aux, start, stop) for aux in out["aux_outputs"]]
    return part


class VideoSam3(Sam3Image):
    """Sam3Image that trains on multi-frame batches (see the module docstring)."""

    def encode_batch(self, batch: BatchedDatapoint) -> dict:
        """Backbone over all frames of the batch, text encoder over all its phrases."""
        backbone_out = {"img_batch_all_stages": batch.img_batch}
        backbone_out.update(self.backbone.forward_image(batch.img_batch))
        backbone_out.update(self.backbone.forward_text(batch.find_text_batch, device=self.device))
        return backbone_out

    @staticmethod
    def _box_prompt(find_input: FindStage) -> Prompt:
        return Prompt(box_embeddings=find_input.input_boxes, box_mask=find_input.input_boxes_mask,
                      box_labels=find_input.input_boxes_label)

    def ground(self, backbone_out: dict, find_input: FindStage) -> dict:
        """Encoder + decoder + segmentation head for all queries of `find_input` in one
        call (upstream forward_grounding without its matching step)."""
        prompt, prompt_mask, backbone_out = self._encode_prompt(
            backbone_out, find_input, self._box_prompt(find_input))
        backbone_out, encoder_out, _ = self._run_encoder(backbone_out, find_input, prompt, prompt_mask)
        out = {"encoder_hidden_states": encoder_out["encoder_hidden_states"]}
        out, hs = self._run_decoder(
            memory=encoder_out["encoder_hidden_states"], pos_embed=encoder_out["pos_embed"],
            src_mask=encoder_out["padding_mask"], out=out, prompt=prompt,
            prompt_mask=prompt_mask, encoder_out=encoder_out)
        self._run_segmentation_heads(
            out=out, backbone_out=backbone_out, img_ids=find_input.img_ids,
            vis_feat_sizes=encoder_out["vis_feat_sizes"],
            encoder_hidden_states=encoder_out["encoder_hidden_states"],
            prompt=prompt, prompt_mask=prompt_mask, hs=hs)
        return out

    def forward(self, batch: BatchedDatapoint) -> SAM3Output:
        """The batched path: one grounding call for every frame of every clip."""
        with compat.cpu_pin_memory_guard():
            backbone_out = self.encode_batch(batch)
            stacked = self.ground(backbone_out, stack_find_stages(batch.find_inputs))
        outputs = SAM3Output(iter_mode=SAM3Output.IterMode.LAST_STEP_PER_STAGE)
        start = 0
        for find_input, find_target in zip(batch.find_inputs, batch.find_targets):
            stop = start + len(find_input.img_ids)
            frame_out = _slice_queries(stacked, start, stop)
            if self.training:
                self._compute_matching(frame_out, self.back_convert(find_target))
            outputs.append([frame_out])
            start = stop
        return outputs

    def forward_per_frame(self, batch: BatchedDatapoint) -> SAM3Output:
        """The reference path: upstream forward_grounding once per frame (sam3 issue 318)."""
        outputs = SAM3Output(iter_mode=SAM3Output.IterMode.LAST_STEP_PER_STAGE)
        with compat.cpu_pin_memory_guard():
            backbone_out = self.encode_batch(batch)
            for find_input, find_target in zip(batch.find_inputs, batch.find_targets):
                out = self.forward_grounding(
                    backbone_out=backbone_out, find_input=find_input, find_target=find_target,
                    geometric_prompt=self._box_prompt(find_input))
                outputs.append([out])
        return outputs
