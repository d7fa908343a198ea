"""DAVIS 2017 J&F per ground-truth object (the one J&F of the project).

The per-frame measures are those of the DAVIS 2017 evaluation (davis2017-evaluation's
`db_eval_iou` / `db_eval_boundary`), reproduced here to the last bit:

J (region similarity): the IoU of predicted and ground-truth mask; a frame where both are
empty scores 1 (the object is correctly reported absent).

F (contour accuracy): the F-measure of boundary precision and recall.
  * Boundary map: a pixel is a boundary pixel when the mask differs between it and its right,
    lower or lower-right neighbour; pixels of the last row compare only with their right
    neighbour, pixels of the last column only with their lower one, and the bottom-right
    pixel never is one. This is the 1-pixel-wide `seg2bmap` map, shifted half a pixel
    towards the origin: a mask edge along the image's bottom or right border has no
    boundary there, and a mask covering the whole frame has no boundary at all.
  * Tolerance: a disk of radius r = ceil(0.008 x image diagonal) pixels (every integer
    offset (dy, dx) with dy^2 + dx^2 <= r^2). A predicted boundary pixel is matched when the
    disk dilation of the ground-truth boundary covers it (precision = matched / predicted
    boundary pixels), and vice versa for recall; F = 2PR / (P + R), and 0 when P + R = 0.
  * Empty boundary maps (decided on the maps, not the masks): both empty -> P = R = 1,
    F = 1; predicted empty only -> P = 1, R = 0, F = 0; ground truth empty only -> P = 0,
    R = 1, F = 0.

Frames counted. DAVIS 2017's evaluation averages each object's per-frame J and F over the
frames of its sequence, except that for the semi-supervised task (the first frame's masks
are the input) it drops the first and the last frame; the unsupervised task (nothing given)
counts every frame. Predictions scored by `j_and_f` come from a text prompt, nothing of the
ground truth is given, so every frame counts (the unsupervised rule). `sequence_j_and_f` and
`masklet_j_and_f` take `prompt_frame=k` for the semi-supervised rule: only frames after the
given frame k count, and never the video's last frame (k = 0 is DAVIS 2017's rule).

DAVIS knows which prediction belongs to which object; open-vocabulary predictions do not, so
within each (video, phrase) the confident predicted masklets are matched one-to-one to the
ground-truth masklets by whole-video mask IoU (Hungarian). An object left without a match
scores 0, so the dataset J&F, the mean over objects, drops by exactly 1/N per missed object.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from sam3_video.data import masks

BOUNDARY_TOLERANCE = 0.008


def _check_shapes(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise ValueError(f"masks must be 2-D and of one shape, got {pred.shape} and {gt.shape}")


def region_similarity(pred: np.ndarray, gt: np.ndarray) -> float:
    """J: IoU of the two masks; two empty masks agree perfectly (1.0)."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    _check_shapes(pred, gt)
    union = int(np.count_nonzero(pred | gt))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(pred & gt)) / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """The 1-pixel-wide boundary map of a 2-D mask (see the module docstring)."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {m.shape}")
    b = np.zeros_like(m)
    b[:, :-1] |= m[:, :-1] != m[:, 1:]        # differs from the right neighbour
    b[:-1, :] |= m[:-1, :] != m[1:, :]        # ... from the lower one
    b[:-1, :-1] |= m[:-1, :-1] != m[1:, 1:]   # ... from the lower-right one
    return b


def tolerance_radius(shape: tuple[int, int], tolerance: float = BOUNDARY_TOLERANCE) -> int:
    """Match distance in pixels: ceil(tolerance x image diagonal) for a tolerance below 1, else
    the tolerance itself taken as a whole number of pixels."""
    if tolerance >= 1:
        if tolerance != int(tolerance):
            raise ValueError(f"a tolerance of 1 or more is a pixel radius, got {tolerance}")
        return int(tolerance)
    h, w = (int(s) for s in shape)
    # sqrt of the exact integer h^2 + w^2, then one float product: the official
    # ceil(0.008 * norm(shape)) bit for bit (e.g. 0.008 x 125 is 1.0 exactly -> 1, not 2).
    return math.ceil(tolerance * math.sqrt(h * h + w * w))


def _dilate_disk(b: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of `b` (not all False) by the disk of integer offsets with
    dy^2 + dx^2 <= radius^2, computed as 'Euclidean distance to the nearest True pixel of b
    is at most radius'. Identical sets: scipy's distance transform is exact, its distances are
    square roots of integers, and sqrt(d2) <= radius holds exactly when d2 <= radius^2. Linear
    in the pixel count, where a direct dilation costs pixels x disk area."""
    return ndimage.distance_transform_edt(~b) <= radius


def boundary_f_measure(pred: np.ndarray, gt: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> float:
    """F: boundary F-measure of `pred` against `gt`, boundaries matched within the disk of
    radius `tolerance_radius(shape, tolerance)` (DAVIS 2017's db_eval_boundary)."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    _check_shapes(pred, gt)
    pred_b, gt_b = boundary_map(pred), boundary_map(gt)
    n_pred, n_gt = int(np.count_nonzero(pred_b)), int(np.count_nonzero(gt_b))
    if n_pred == 0 or n_gt == 0:
        # both empty: P = R = 1; one empty: P = 1, R = 0 or P = 0, R = 1 -> F = 0
        return 1.0 if n_pred == n_gt else 0.0
    radius = tolerance_radius(pred.shape, tolerance)
    # Only boundary pixels are ever tested and all of them lie in the box around both
    # boundary maps, so the dilations can be computed inside that box alone.
    rows = np.flatnonzero((pred_b | gt_b).any(axis=1))
    cols = np.flatnonzero((pred_b | gt_b).any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    pred_b, gt_b = pred_b[box], gt_b[box]
    precision = int(np.count_nonzero(pred_b & _dilate_disk(gt_b, radius))) / n_pred
    recall = int(np.count_nonzero(gt_b & _dilate_disk(pred_b, radius))) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def counted_frames(n_frames: int, prompt_frame: int | None = None) -> range:
    """Indices of the frames whose J and F are averaged: all of them when nothing was given
    (prompt_frame None), else those after the given frame except the video's last one."""
    if prompt_frame is None:
        frames = range(n_frames)
    elif 0 <= prompt_frame < n_frames:
        frames = range(prompt_frame + 1, n_frames - 1)
    else:
        raise ValueError(f"prompt frame {prompt_frame} is outside a video of {n_frames} frames")
    if not frames:
        raise ValueError(f"no frame to score in a video of {n_frames} frames (prompt frame {prompt_frame})")
    return frames


def frames_j_and_f(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """Mean J and mean F over frames of one object, given (predicted, ground-truth) masks;
    the tracker's evaluation and the masklet J&F share it."""
    js, fs = [], []
    for pred, gt in pairs:
        js.append(region_similarity(pred, gt))
        fs.append(boundary_f_measure(pred, gt))
    return float(np.mean(js)), float(np.mean(fs))


def _check_lengths(preds: Sequence, gts: Sequence) -> None:
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predicted frames for {len(gts)} ground-truth frames")


def sequence_j_and_f(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], *,
                     prompt_frame: int | None = None) -> tuple[float, float]:
    """Mean J and mean F of one object over the counted frames of its video.
    preds, gts: one 2-D mask per frame of the whole video."""
    _check_lengths(preds, gts)
    return frames_j_and_f((preds[t], gts[t]) for t in counted_frames(len(gts), prompt_frame))


def masklet_j_and_f(pred_segs: list, gt_segs: list, height: int, width: int, *,
                    prompt_frame: int | None = None) -> tuple[float, float]:
    """Mean J and mean F over the counted frames of one video for one object; the masks are
    RLEs, None where absent, decoded one frame at a time."""
    _check_lengths(pred_segs, gt_segs)
    return frames_j_and_f((masks.decode(pred_segs[t], height, width), masks.decode(gt_segs[t], height, width))
                         for t in counted_frames(len(gt_segs), prompt_frame))


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
