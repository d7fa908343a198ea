"""J&F, the DAVIS benchmark's video-object metric, per ground-truth object (the one J&F).

J (region similarity) is the mask IoU of a frame; F (contour accuracy) is the F-measure of
boundary pixels matched within a tolerance of `BOUNDARY_TOLERANCE` x image diagonal (as in the
DAVIS benchmark). Both are averaged over the frames of an object (`frames_j_and_f`), then
J&F = (J + F) / 2. The tracker's evaluation scores its propagated masks with the same
per-object mean; `j_and_f` below scores open-vocabulary masklets of a whole dataset.

DAVIS knows which prediction belongs to which object; open-vocabulary predictions do not, so
within each (video, phrase) the confident predicted masklets are matched one-to-one to the
ground-truth masklets by whole-video mask IoU (Hungarian). An object left without a match
scores 0, so the dataset J&F, the mean over objects, drops by exactly 1/N per missed object.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from sam3_video.data import masks

BOUNDARY_TOLERANCE = 0.008


def region_similarity(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU; two empty masks agree perfectly (the object is correctly reported absent)."""
    union = np.logical_or(pred, gt).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(pred, gt).sum() / union)


def _boundary(mask: np.ndarray) -> np.ndarray:
    # Foreground pixels with a background 4-neighbour (image borders count as background).
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _disk(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return x * x + y * y <= radius * radius


def boundary_f_measure(pred: np.ndarray, gt: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> float:
    """F-measure of boundary precision/recall with a match distance of tolerance x diagonal."""
    pred_b, gt_b = _boundary(pred), _boundary(gt)
    n_pred, n_gt = int(pred_b.sum()), int(gt_b.sum())
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0
    radius = max(1, math.ceil(tolerance * math.hypot(*pred.shape)))
    disk = _disk(radius)
    precision = np.logical_and(pred_b, ndimage.binary_dilation(gt_b, disk)).sum() / n_pred
    recall = np.logical_and(gt_b, ndimage.binary_dilation(pred_b, disk)).sum() / n_gt
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def frames_j_and_f(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """Mean J and mean F over frames of one object, given (predicted, ground-truth) bool masks."""
    js, fs = [], []
    for pred, gt in pairs:
        js.append(region_similarity(pred, gt))
        fs.append(boundary_f_measure(pred, gt))
    return float(np.mean(js)), float(np.mean(fs))


def masklet_j_and_f(pred_segs: list, gt_segs: list, height: int, width: int) -> tuple[float, float]:
    """Mean J and mean F over the frames of one video for one object (RLEs or None)."""
    return frames_j_and_f((masks.decode(p, height, width), masks.decode(g, height, width))
                          for p, g in zip(pred_segs, gt_segs, strict=True))


def _video_iou(pred_segs: list, gt_segs: list) -> float:
    """IoU of two masklets as space-time volumes (pixels summed over all frames)."""
    inter = union = 0.0
    for p, g in zip(pred_segs, gt_segs):
        pa = masks.area(p) if p is not None else 0.0
        ga = masks.area(g) if g is not None else 0.0
        i = masks.intersection_area(p, g) if p is not None and g is not None else 0.0
        inter += i
        union += pa + ga - i
    return inter / union if union > 0 else 0.0


def j_and_f(gt: dict, predictions: list[dict], score_threshold: float = 0.5) -> dict:
    """Dataset J, F and J&F (means over ground-truth objects) plus the per-object table.

    gt: the evaluator GT (ground_truth.to_saco_gt); predictions: sam3-format masklets.
    """
    videos = {v["id"]: v for v in gt["videos"]}
    preds_by_pair = defaultdict(list)
    for p in predictions:
        if p["score"] >= score_threshold:
            preds_by_pair[(p["video_id"], p["category_id"])].append(p)
    gts_by_pair = defaultdict(list)
    for ann in gt["annotations"]:
        gts_by_pair[(ann["video_id"], ann["category_id"])].append(ann)

    per_object = []
    for (video_id, category_id), gts in sorted(gts_by_pair.items()):
        preds = preds_by_pair.get((video_id, category_id), [])
        ious = np.array([[_video_iou(p["segmentations"], g["segmentations"]) for g in gts]
                         for p in preds]).reshape(len(preds), len(gts))
        match = {}
        if ious.size:
            for p_i, g_i in zip(*linear_sum_assignment(ious, maximize=True)):
                if ious[p_i, g_i] > 0:
                    match[int(g_i)] = int(p_i)
        video = videos[video_id]
        for g_i, ann in enumerate(gts):
            j = f = 0.0
            if g_i in match:
                j, f = masklet_j_and_f(preds[match[g_i]]["segmentations"], ann["segmentations"],
                                       video["height"], video["width"])
            per_object.append({"video_id": video_id, "category_id": category_id,
                               "gt_id": ann["id"], "matched": g_i in match,
                               "j": j, "f": f, "j_and_f": (j + f) / 2})
    if not per_object:
        return {"j": 0.0, "f": 0.0, "j_and_f": 0.0, "per_object": []}
    return {
        "j": float(np.mean([o["j"] for o in per_object])),
        "f": float(np.mean([o["f"] for o in per_object])),
        "j_and_f": float(np.mean([o["j_and_f"] for o in per_object])),
        "per_object": per_object,
    }
