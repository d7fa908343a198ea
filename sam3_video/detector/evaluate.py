"""Evaluation of the detect task in separate steps (the seam for the video metrics):

    detections = predict(model, dataset_root, image_size)   # per-frame detections
    metrics    = score_frames(detections, dataset_root)     # per-frame mask and box AP
    results    = score_video(detections, dataset_root)      # masklets + every video metric

`predict` runs the model over every (video, phrase) datapoint of a native dataset, all
frames of each video (or windows of `frames_per_clip`), EVAL_CHUNK_FRAMES frames through
the model at a time (as the tracker's evaluation), and returns one Detection per kept
query per frame. `score_frames` computes COCO-style AP per frame with sam3.eval's
pycocotools evaluator. `score_video` links the same detections into masklets and scores
them with sam3_video.metrics (mAP, HOTA, cgF1, J&F, ...), frame AP included.

Masklets come from sam3_video.metrics.linking (mask IoU plus constant-velocity motion,
Hungarian; ground truth fed through it scores 1 on every metric), the same linking that
prediction jobs use. Not from sam3's own video inference (Sam3VideoInference, which
build_sam3_video_model wires): there every masklet's mask after its first frame is the
tracker's propagated mask (Sam3VideoBase.build_outputs), and a detect job trains no
tracker. A tiny detect job has no tracker and no tracker neck at all (random init), so its
masklets would measure a random tracker, not the detector being fine-tuned; for the sam3
preset the base tracker learned on the base ViT trunk, which detect training changes by
default (the pairing `export --base` refuses).
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from sam3_video import metrics as video_metrics
from sam3_video.backbone.vision import EVAL_CHUNK_FRAMES
from sam3_video.data import collate, eval_clips, load_native, move_to
from sam3_video.data import masks as rle_masks
from sam3_video.detector.model import split_frames

MIN_SCORE = 0.01        # detections below this are dropped (they cannot move AP)
MAX_PER_FRAME = 100     # COCO's maxDets


@dataclass(frozen=True)
class Detection:
    video_id: int
    frame_index: int         # index of the frame in its video
    category_id: int
    phrase: str
    score: float             # sigmoid(pred_logits): presence is already in it (see query_scores)
    bbox: list[float]        # absolute xywh pixels of the original frame
    segmentation: dict       # COCO RLE of the original frame size, str counts
    query_index: int         # which decoder query produced it (links detections over frames)

    def to_json(self) -> dict:
        return asdict(self)


def query_scores(out: dict, query: int, presence_in_logits: bool = True) -> torch.Tensor:
    """The score of every decoder query of one frame's output for prompt `query`.

    The detector is built with supervise_joint_box_scores=True, so sam3 already folds the
    presence token into pred_logits (logit(sigmoid(class) * sigmoid(presence)), see
    Sam3Image._update_scores_and_boxes): the score is pred_logits.sigmoid(), exactly what
    upstream's video detector reads (sam3_video_base.py). Multiplying by the presence
    again would count it twice. Only a model without joint scores needs the product."""
    scores = out["pred_logits"][query, :, 0].float().sigmoid()
    if not presence_in_logits and out.get("presence_logit_dec") is not None:
        scores = scores * out["presence_logit_dec"][query].float().sigmoid().reshape(())
    return scores


def frame_detections(out: dict, query: int, width: int, height: int,
                     presence_in_logits: bool = True) -> list[tuple]:
    """(query_index, score, xywh box, binary mask) for query `query` of one frame's output."""
    scores = query_scores(out, query, presence_in_logits)
    keep = torch.nonzero(scores >= MIN_SCORE).flatten()
    keep = keep[scores[keep].argsort(descending=True)][:MAX_PER_FRAME]
    if keep.numel() == 0:
        return []
    cx, cy, w, h = out["pred_boxes"][query, keep].float().unbind(-1)
    boxes = torch.stack([(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height], -1)
    masks = F.interpolate(out["pred_masks"][query, keep][None].float(), size=(height, width),
                          mode="bilinear", align_corners=False)[0] > 0
    return [(int(q), float(scores[q]), boxes[i].tolist(), masks[i].cpu().numpy())
            for i, q in enumerate(keep)]


@torch.no_grad()
def predict(model: torch.nn.Module, root: Path, image_size: int,
            frames_per_clip: int | None = None,
            chunk_frames: int | None = EVAL_CHUNK_FRAMES) -> list[Detection]:
    """Detections for every (video, phrase) pair of the dataset, negatives included.
    The model sees `chunk_frames` frames of a clip at a time (None: the whole clip), and
    each chunk's outputs become detections before the next runs, so device memory does
    not grow with the video's length; the detections are the same either way."""
    native = load_native(root)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    # Sam3Image(supervise_joint_box_scores=True), as build_model makes it: presence is in pred_logits
    joint = getattr(getattr(model, "module", model), "supervise_joint_box_scores", True)
    detections = []
    try:
        for clip in eval_clips(root, image_size=image_size, frames_per_clip=frames_per_clip):
            video = native.videos[clip.video_id]
            for start, part in split_frames(collate([clip.datapoint]), chunk_frames):
                outputs = model(move_to(part, device))
                frames = clip.frame_indices[start:start + len(outputs)]
                for frame, out in zip(frames, outputs):  # one output per frame
                    for query, score, box, mask in frame_detections(
                            out, 0, video.width, video.height, presence_in_logits=joint):
                        detections.append(Detection(
                            video_id=clip.video_id, frame_index=frame,
                            category_id=clip.category_id, phrase=clip.noun_phrase, score=score,
                            bbox=[round(v, 2) for v in box],
                            segmentation=rle_masks.to_rle(mask), query_index=query))
                del outputs
    finally:
        model.train(was_training)
    return detections


# -- scoring ---------------------------------------------------------------------------

def _image_id(video_id: int, frame: int, frames_per_video: int) -> int:
    return video_id * frames_per_video + frame


def frame_ground_truth(native) -> dict:
    """The dataset as a COCO image-level ground truth: one image per (video, frame)."""
    span = 1 + max(v.length for v in native.videos.values())
    images = [{"id": _image_id(v.id, t, span), "width": v.width, "height": v.height}
              for v in native.videos.values() for t in range(v.length)]
    annotations = []
    for track in native.tracks:
        for t, (box, seg) in enumerate(zip(track.bboxes, track.segmentations)):
            if box is None:
                continue
            rle = rle_masks.to_rle(seg)
            annotations.append({
                "id": len(annotations) + 1, "image_id": _image_id(track.video_id, t, span),
                "category_id": track.category_id, "bbox": list(box),
                "area": rle_masks.area(rle), "segmentation": rle,
                "iscrowd": int(track.iscrowd)})
    categories = [{"id": cid, "name": name} for cid, name in native.categories.items()]
    return {"images": images, "annotations": annotations, "categories": categories,
            "span": span}


def _coco_ap(gt: dict, results: list[dict], iou_type: str) -> dict[str, float]:
    from pycocotools.coco import COCO
    from sam3.eval.coco_eval_offline import COCOevalCustom

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = {k: v for k, v in gt.items() if k != "span"}
        coco_gt.createIndex()
        if not results:
            return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
        coco_dt = coco_gt.loadRes(results)
        ev = COCOevalCustom(coco_gt, coco_dt, iouType=iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # stats: AP@[.5:.95], AP@.5, AP@.75 ...; -1 means "no ground truth": report 0
    return {name: max(0.0, float(ev.stats[i])) for i, name in enumerate(("ap", "ap50", "ap75"))}


def score_frames(detections: list[Detection], root: Path) -> dict[str, float]:
    """Per-frame COCO AP of masks and boxes: {"mask_ap", "mask_ap50", "mask_ap75",
    "box_ap", "box_ap50", "box_ap75", "num_detections"}."""
    gt = frame_ground_truth(load_native(root))
    span = gt["span"]
    boxes, masks = [], []
    for d in detections:
        image_id = _image_id(d.video_id, d.frame_index, span)
        boxes.append({"image_id": image_id, "category_id": d.category_id, "score": d.score,
                      "bbox": d.bbox})
        masks.append({"image_id": image_id, "category_id": d.category_id, "score": d.score,
                      "segmentation": rle_masks.pycoco_rle(d.segmentation)})
    metrics = {f"mask_{k}": v for k, v in _coco_ap(gt, masks, "segm").items()}
    metrics.update({f"box_{k}": v for k, v in _coco_ap(gt, boxes, "bbox").items()})
    metrics["num_detections"] = float(len(detections))
    return metrics


def score_video(detections: list[Detection], root: Path, score_threshold: float = 0.5) -> dict:
    """Every video metric (sam3_video.metrics) of the detections, linked into masklets: its
    results plus "metrics", one flat map of the video metrics (mask_ap, phrase_ap, hota,
    teta, cgf1, j_and_f, j, f) and the per-frame COCO AP (frame_mask_ap, frame_box_ap, ...)."""
    results = video_metrics.score_detections(root, [d.to_json() for d in detections],
                                             score_threshold=score_threshold)
    frame = {f"frame_{k}" if "ap" in k else k: v for k, v in score_frames(detections, root).items()}
    results["metrics"] = {**video_metrics.flat_metrics(results), **frame}
    return results
