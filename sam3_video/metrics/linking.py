"""Link per-frame detections of one (video, phrase) into masklets.

The detector-only path sees every frame independently, so its detections carry no identity.
We give them one greedily in time: frame t's detections are assigned to the existing tracks
with an optimal (Hungarian) assignment on an affinity that has two parts:

  * mask IoU with the track's most recent mask (objects that overlap from frame to frame);
  * motion: the distance, in object sizes, from the detection's box centre to where the
    track's constant-velocity motion puts it now. An object that moves farther than its own
    size between frames has IoU 0 with its last mask but lands where its motion predicts;
    without this term such an object (the synthetic clips' "crossing" objects, fast motion
    in real video, an object reappearing after a gap) falls apart into several masklets.

A pair is a candidate when its IoU reaches `min_iou` or its predicted-centre distance is at
most `max_distance` object sizes. Detections scoring at least `score_threshold` that are left
over start new tracks; weaker ones (down to `extend_threshold`) may extend a track but never
start one, and detections below `extend_threshold` are ignored, so detector noise neither
floods the output with one-frame masklets nor stretches real ones.

A masklet's score is the mean of its confident frames' scores (those at least
`confident_score`), or of all its frames when none is confident: a well-found object whose
detector score dips on a few frames (entering the frame, occluded) keeps a confident score.

Detect evaluation and prediction make their masklets here (sam3_video.detector.evaluate
says why not with sam3's own video inference).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from sam3_video.data import masks

LINKING_METHOD = "iou-motion-hungarian"
CONFIDENT_SCORE = 0.5      # the score the thresholded metrics (HOTA, cgF1, J&F) count from
EXTEND_THRESHOLD = 0.1     # default floor for extending a track (capped at the start threshold)


@dataclass
class _Detection:
    rle: dict
    score: float
    centre: np.ndarray       # box centre (x, y), pixels
    size: float              # sqrt(box area), pixels


@dataclass
class _Track:
    last: _Detection
    last_frame: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # pixels per frame
    frames: dict[int, dict] = field(default_factory=dict)   # frame index -> RLE
    scores: list[float] = field(default_factory=list)

    def add(self, t: int, det: _Detection) -> None:
        if self.frames:
            self.velocity = (det.centre - self.last.centre) / (t - self.last_frame)
        self.last, self.last_frame = det, t
        self.frames[t] = det.rle
        self.scores.append(det.score)

    def score(self, confident_score: float) -> float:
        confident = [s for s in self.scores if s >= confident_score]
        return float(np.mean(confident or self.scores))


def _detection(rle: dict, score: float) -> _Detection:
    x, y, w, h = masks.bbox(rle)
    return _Detection(rle, score, np.array([x + w / 2, y + h / 2]), math.sqrt(max(w * h, 1.0)))


def _assign(tracks: list[_Track], dets: list[_Detection], t: int, min_iou: float,
            max_distance: float) -> dict[int, int]:
    """detection index -> track index, maximising the total affinity over candidate pairs."""
    if not tracks or not dets:
        return {}
    ious = masks.iou_matrix([d.rle for d in dets], [k.last.rle for k in tracks])
    predicted = np.stack([k.last.centre + k.velocity * (t - k.last_frame) for k in tracks])
    sizes = np.maximum(np.array([d.size for d in dets])[:, None],
                       np.array([k.last.size for k in tracks])[None, :])
    centres = np.stack([d.centre for d in dets])
    distance = np.linalg.norm(centres[:, None, :] - predicted[None, :, :], axis=-1) / sizes
    candidate = (ious >= min_iou) | (distance <= max_distance)
    affinity = ious + np.clip(1.0 - distance / max_distance, 0.0, 1.0)
    # Non-candidates get a large negative affinity: the assignment avoids them when it can,
    # and any it still makes are dropped below.
    det_idx, trk_idx = linear_sum_assignment(np.where(candidate, affinity, -1e6), maximize=True)
    return {int(d): int(k) for d, k in zip(det_idx, trk_idx) if candidate[d, k]}


def link_detections(
    frame_detections: Sequence[Sequence[dict]],
    *,
    video_id: int,
    category_id: int,
    score_threshold: float = 0.5,
    extend_threshold: float | None = None,
    min_iou: float = 0.1,
    max_distance: float = 1.5,
    confident_score: float = CONFIDENT_SCORE,
) -> list[dict]:
    """Masklets in sam3's prediction format from per-frame detections.

    frame_detections[t] lists the detections of frame t, each {"mask": RLE or 2-D bool array,
    "score": float}. Returns one prediction per track: {"video_id", "category_id", "score"
    (see the module docstring), "segmentations", "bboxes", "areas"} with one entry per frame
    (None where the track is absent). extend_threshold None: EXTEND_THRESHOLD, or
    score_threshold when that is lower.
    """
    if extend_threshold is None:
        extend_threshold = min(EXTEND_THRESHOLD, score_threshold)
    if extend_threshold > score_threshold:
        raise ValueError(f"extend_threshold ({extend_threshold}) must not exceed "
                         f"score_threshold ({score_threshold}): a track could start but not go on")
    tracks: list[_Track] = []
    for t, detections in enumerate(frame_detections):
        dets = []
        for i, det in enumerate(detections):
            if "mask" not in det or "score" not in det:
                raise ValueError(f"frame {t} detection {i}: needs 'mask' and 'score'")
            score = float(det["score"])
            if score < extend_threshold:
                continue
            rle = masks.to_rle(det["mask"])
            if masks.area(rle) > 0:  # an empty mask cannot be linked or scored
                dets.append(_detection(rle, score))
        assigned = _assign(tracks, dets, t, min_iou, max_distance)
        for d, det in enumerate(dets):
            if d in assigned:
                tracks[assigned[d]].add(t, det)
            elif det.score >= score_threshold:
                track = _Track(last=det, last_frame=t)
                track.add(t, det)
                tracks.append(track)

    num_frames = len(frame_detections)
    predictions = []
    for track in tracks:
        records = [masks.frame_record(track.frames.get(t)) for t in range(num_frames)]
        predictions.append({
            "video_id": int(video_id),
            "category_id": int(category_id),
            "score": track.score(confident_score),
            "segmentations": [r[0] for r in records],
            "bboxes": [r[1] for r in records],
            "areas": [r[2] for r in records],
        })
    return predictions


def link_dataset_detections(
    detections: Iterable[Mapping],
    video_lengths: Mapping[int, int],
    *,
    score_threshold: float = 0.5,
    extend_threshold: float | None = None,
    min_iou: float = 0.1,
    max_distance: float = 1.5,
) -> list[dict]:
    """Masklets for a whole dataset from flat per-frame detections, each {"video_id",
    "category_id", "frame_index", "score", "segmentation" (RLE) or "mask"}: linked per
    (video, phrase) with link_detections."""
    by_pair: dict[tuple[int, int], dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for i, det in enumerate(detections):
        try:
            video_id, category_id, t = int(det["video_id"]), int(det["category_id"]), int(det["frame_index"])
            mask = det["segmentation"] if "segmentation" in det else det["mask"]
            score = float(det["score"])
        except KeyError as err:
            raise ValueError(f"detections[{i}]: missing {err.args[0]!r}") from None
        if video_id not in video_lengths:
            raise ValueError(f"detections[{i}].video_id: {video_id} is not a video of the dataset")
        if not 0 <= t < video_lengths[video_id]:
            raise ValueError(f"detections[{i}].frame_index: {t} outside 0..{video_lengths[video_id] - 1}")
        by_pair[(video_id, category_id)][t].append({"mask": mask, "score": score})
    masklets = []
    for (video_id, category_id), frames in sorted(by_pair.items()):
        per_frame = [frames.get(t, []) for t in range(video_lengths[video_id])]
        masklets += link_detections(per_frame, video_id=video_id, category_id=category_id,
                                    score_threshold=score_threshold,
                                    extend_threshold=extend_threshold, min_iou=min_iou,
                                    max_distance=max_distance)
    return masklets
