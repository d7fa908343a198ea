"""Link per-frame detections of one (video, phrase) into masklets.

The detector-only path sees every frame independently, so its detections carry no identity.
We give them one greedily in time: frame t's detections are assigned to the existing tracks
by mask IoU with an optimal (Hungarian) assignment against each track's most recent mask;
confident detections left over start new tracks. Low-score detections may extend a track but
never start one, so detector noise does not become a flood of one-frame masklets.

Limitation: an object that moves farther than its own size between frames has IoU 0 with
its previous mask and is split into several masklets (the synthetic clips' "crossing"
objects at 8 frames do this); real video at normal frame rates overlaps well.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from sam3_video.data import masks

LINKING_METHOD = "iou-hungarian"


@dataclass
class _Track:
    last_mask: dict                                   # RLE of the newest frame it was seen in
    frames: dict[int, dict] = field(default_factory=dict)   # frame index -> RLE
    scores: list[float] = field(default_factory=list)


def _assign(tracks: list[_Track], detections: list[dict], min_iou: float) -> dict[int, int]:
    """detection index -> track index, maximising total IoU; pairs below min_iou are dropped."""
    ious = masks.iou_matrix([d["rle"] for d in detections], [t.last_mask for t in tracks])
    if ious.size == 0:
        return {}
    det_idx, trk_idx = linear_sum_assignment(ious, maximize=True)
    return {int(d): int(t) for d, t in zip(det_idx, trk_idx) if ious[d, t] >= min_iou}


def link_detections(
    frame_detections: Sequence[Sequence[dict]],
    *,
    video_id: int,
    category_id: int,
    score_threshold: float = 0.5,
    min_iou: float = 0.1,
) -> list[dict]:
    """Masklets in sam3's prediction format from per-frame detections.

    frame_detections[t] lists the detections of frame t, each {"mask": RLE or 2-D bool array,
    "score": float}. Returns one prediction per track: {"video_id", "category_id", "score"
    (mean detection score), "segmentations", "bboxes", "areas"} with one entry per frame
    (None where the track is absent).
    """
    tracks: list[_Track] = []
    for t, detections in enumerate(frame_detections):
        dets = []
        for i, det in enumerate(detections):
            if "mask" not in det or "score" not in det:
                raise ValueError(f"frame {t} detection {i}: needs 'mask' and 'score'")
            rle = masks.to_rle(det["mask"])
            if masks.area(rle) > 0:  # an empty mask cannot be linked or scored
                dets.append({"rle": rle, "score": float(det["score"])})
        assigned = _assign(tracks, dets, min_iou)
        for d, det in enumerate(dets):
            if d in assigned:
                track = tracks[assigned[d]]
            elif det["score"] >= score_threshold:
                track = _Track(last_mask=det["rle"])
                tracks.append(track)
            else:
                continue
            track.last_mask = det["rle"]
            track.frames[t] = det["rle"]
            track.scores.append(det["score"])

    num_frames = len(frame_detections)
    predictions = []
    for track in tracks:
        records = [masks.frame_record(track.frames.get(t)) for t in range(num_frames)]
        predictions.append({
            "video_id": int(video_id),
            "category_id": int(category_id),
            "score": float(np.mean(track.scores)),
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
    min_iou: float = 0.1,
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
                                    score_threshold=score_threshold, min_iou=min_iou)
    return masklets
