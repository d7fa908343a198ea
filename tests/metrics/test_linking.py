"""Linking per-frame detections into masklets (the detector-only path)."""
import random

import numpy as np
import pytest

from sam3_video.data import masks
from sam3_video.metrics import LINKING_METHOD, link_detections

from .conftest import FRAMES, box_mask

TRACKS = [(5, 5), (30, 20), (40, 2)]   # (x0, y0) of three objects moving together


def _decoded(prediction):
    return [masks.decode(s, 48, 64) for s in prediction["segmentations"]]


def test_recovers_known_tracks_from_shuffled_detections():
    rng = random.Random(0)
    frames = []
    for t in range(FRAMES):
        dets = [{"mask": box_mask(x0, y0, t), "score": 0.9, "track": k}
                for k, (x0, y0) in enumerate(TRACKS)]
        rng.shuffle(dets)  # detections carry no identity and no stable order
        frames.append(dets)

    linked = link_detections(frames, video_id=7, category_id=3)

    assert LINKING_METHOD == "iou-hungarian"
    assert len(linked) == len(TRACKS)
    recovered = set()
    for pred in linked:
        assert pred["video_id"] == 7 and pred["category_id"] == 3
        assert pred["score"] == pytest.approx(0.9)
        seq = _decoded(pred)
        # every frame of one masklet must be the same object's mask
        owners = {k for k, (x0, y0) in enumerate(TRACKS)
                  for t in range(FRAMES) if np.array_equal(seq[t], box_mask(x0, y0, t))}
        assert len(owners) == 1
        assert all(np.array_equal(seq[t], box_mask(*TRACKS[next(iter(owners))], t))
                   for t in range(FRAMES))
        recovered |= owners
    assert recovered == {0, 1, 2}


def test_low_scores_extend_tracks_but_never_start_them():
    frames = [
        [{"mask": box_mask(5, 5, 0), "score": 0.8}, {"mask": box_mask(40, 30, 0), "score": 0.2}],
        [{"mask": box_mask(5, 5, 1), "score": 0.3}],      # weak, but continues the track
        [],                                               # object missed in frame 2
        [{"mask": box_mask(5, 5, 3), "score": 0.7},       # re-found after the gap
         {"mask": box_mask(40, 2, 3), "score": 0.95}],    # appears late: new track
    ]
    linked = sorted(link_detections(frames, video_id=1, category_id=1, score_threshold=0.5),
                    key=lambda p: p["score"])
    assert len(linked) == 2
    first, late = linked
    assert first["score"] == pytest.approx((0.8 + 0.3 + 0.7) / 3)
    assert [s is not None for s in first["segmentations"]] == [True, True, False, True]
    assert first["bboxes"][2] is None and first["areas"][2] is None
    assert [s is not None for s in late["segmentations"]] == [False, False, False, True]
    assert late["bboxes"][3] == [46.0, 5.0, 12.0, 10.0]  # x0 + 2t, y0 + t
    assert late["areas"][3] == 120.0


def test_accepts_rle_masks_and_skips_empty_ones():
    frames = [[{"mask": masks.to_rle(box_mask(5, 5, t)), "score": 0.9},
               {"mask": np.zeros((48, 64), bool), "score": 0.99}] for t in range(FRAMES)]
    linked = link_detections(frames, video_id=1, category_id=1)
    assert len(linked) == 1
    assert all(s is not None for s in linked[0]["segmentations"])


def test_disjoint_masks_are_not_linked():
    # IoU 0 with the previous mask: an optimal assignment exists, but it is not a match.
    frames = [[{"mask": box_mask(0, 0, 0), "score": 0.9}],
              [{"mask": box_mask(45, 30, 0), "score": 0.9}]]
    assert len(link_detections(frames, video_id=1, category_id=1)) == 2


def test_bad_detection_names_the_frame():
    with pytest.raises(ValueError, match="frame 1 detection 0"):
        link_detections([[], [{"mask": box_mask(0, 0, 0)}]], video_id=1, category_id=1)


def test_score_detections_links_then_scores_shuffled_ground_truth(tiny_dataset):
    from sam3_video.metrics import load_annotations, predictions_from_ground_truth, score_detections
    detections = [{"video_id": p["video_id"], "category_id": p["category_id"], "frame_index": t,
                   "score": 0.9, "segmentation": s}
                  for p in predictions_from_ground_truth(tiny_dataset)
                  for t, s in enumerate(p["segmentations"]) if s is not None]
    random.Random(1).shuffle(detections)
    result = score_detections(tiny_dataset, detections)
    assert result["linking"] == "iou-hungarian"
    assert len(result["predictions"]) == len(load_annotations(tiny_dataset)["annotations"])
    assert result["headline"]["mask_ap"] == 1.0
    assert result["headline"]["j_and_f"] == 1.0
    with pytest.raises(ValueError, match=r"detections\[0\].frame_index: 9"):
        score_detections(tiny_dataset, [dict(detections[0], frame_index=9)])
