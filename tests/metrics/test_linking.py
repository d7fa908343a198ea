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

    assert LINKING_METHOD == "iou-motion-hungarian"
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
    # the weak frame is part of the masklet, but its score is that of the confident frames
    assert first["score"] == pytest.approx((0.8 + 0.7) / 2)
    assert [s is not None for s in first["segmentations"]] == [True, True, False, True]
    assert first["bboxes"][2] is None and first["areas"][2] is None
    assert [s is not None for s in late["segmentations"]] == [False, False, False, True]
    assert late["bboxes"][3] == [46.0, 5.0, 12.0, 10.0]  # x0 + 2t, y0 + t
    assert late["areas"][3] == 120.0


def test_noise_below_the_extend_threshold_neither_extends_nor_dilutes():
    # The same object at 0.9 on frames 0 and 2; on frames 1 and 3 only a 0.02 detection of
    # it (what a detector's leftover queries give). Before, such noise joined the track
    # and its mean score fell to 0.46, under the 0.5 every thresholded metric counts from.
    frames = [[{"mask": box_mask(5, 5, t), "score": 0.9 if t % 2 == 0 else 0.02}]
              for t in range(FRAMES)]
    linked = link_detections(frames, video_id=1, category_id=1, score_threshold=0.05,
                             extend_threshold=0.05)
    assert len(linked) == 1
    assert linked[0]["score"] == pytest.approx(0.9)
    assert [s is not None for s in linked[0]["segmentations"]] == [True, False, True, False]


def test_masklet_without_confident_frames_keeps_its_mean_score():
    frames = [[{"mask": box_mask(5, 5, t), "score": s}] for t, s in enumerate((0.2, 0.3, 0.1, 0.2))]
    linked = link_detections(frames, video_id=1, category_id=1, score_threshold=0.1,
                             extend_threshold=0.1)
    assert len(linked) == 1 and linked[0]["score"] == pytest.approx(0.2)


def _square(cx: float, cy: float, side: int = 10, height: int = 48, width: int = 200) -> np.ndarray:
    m = np.zeros((height, width), bool)
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    m[max(y0, 0):max(y0 + side, 0), max(x0, 0):max(x0 + side, 0)] = True
    return m


def test_object_moving_farther_than_its_size_per_frame_stays_one_masklet():
    # 10 px squares moving 14 px per frame: IoU 0 with the previous frame's mask, so IoU
    # linking alone cut each into one masklet per frame. Two of them move in parallel,
    # 25 px apart, and must not swap; one vanishes for a frame and comes back further on.
    frames = []
    for t in range(8):
        dets = [{"mask": _square(10 + 14 * t, 10), "score": 0.9}]
        if t != 4:
            dets.append({"mask": _square(10 + 14 * t, 35), "score": 0.8})
        frames.append(dets[::-1] if t % 2 else dets)
    linked = link_detections(frames, video_id=1, category_id=1)
    assert len(linked) == 2
    for pred in linked:
        rows = {int(np.flatnonzero(masks.decode(s, 48, 200).any(1))[0])
                for s in pred["segmentations"] if s is not None}
        assert len(rows) == 1, rows  # every frame of the masklet is the same object
    upper, lower = sorted(linked, key=lambda p: -p["score"])
    assert all(s is not None for s in upper["segmentations"])
    assert [s is None for s in lower["segmentations"]] == [t == 4 for t in range(8)]


def test_extend_threshold_above_the_start_threshold_is_refused():
    with pytest.raises(ValueError, match="extend_threshold"):
        link_detections([], video_id=1, category_id=1, score_threshold=0.2, extend_threshold=0.3)


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


@pytest.fixture(scope="module")
def crossing_dataset(tmp_path_factory):
    """Synthetic clips of 8 frames as the demo's: videos 0 and 3 have an object crossing the
    frame faster than its own size per frame, absent on its first and last frames."""
    from sam3_video.data import write_synthetic
    root = tmp_path_factory.mktemp("crossing")
    write_synthetic(root, videos=4, frames=8, seed=1)
    return root


@pytest.mark.parametrize("dataset", ["tiny_dataset", "crossing_dataset"])
def test_ground_truth_fed_as_detections_scores_one_on_every_metric(request, dataset):
    """Issue 12 defect 7: the exact ground-truth masks, as flat shuffled per-frame
    detections at score 0.9, link into one masklet per object and score 1 on mask AP,
    HOTA, cgF1 and J&F (IoU linking alone gave 18 masklets for these 8 objects, HOTA 0.91,
    mask AP 0.54)."""
    from sam3_video.metrics import load_annotations, predictions_from_ground_truth, score_detections
    root = request.getfixturevalue(dataset)
    detections = [{"video_id": p["video_id"], "category_id": p["category_id"], "frame_index": t,
                   "score": 0.9, "segmentation": s}
                  for p in predictions_from_ground_truth(root)
                  for t, s in enumerate(p["segmentations"]) if s is not None]
    random.Random(1).shuffle(detections)
    result = score_detections(root, detections)
    assert result["linking"] == LINKING_METHOD
    assert len(result["predictions"]) == len(load_annotations(root)["annotations"])
    head = result["headline"]
    assert head["mask_ap"] == 1.0 and head["phrase_ap"] == 1.0 and head["j_and_f"] == 1.0
    assert head["hota"] == pytest.approx(1.0) and head["teta"] == pytest.approx(1.0)
    assert head["cgf1"] == pytest.approx(1.0, abs=1e-3)   # MCC carries a small epsilon
    assert all(p["score"] == pytest.approx(0.9) for p in result["predictions"])


def test_score_detections_names_a_bad_frame_index(tiny_dataset):
    from sam3_video.metrics import predictions_from_ground_truth, score_detections
    p = predictions_from_ground_truth(tiny_dataset)[0]
    detection = {"video_id": p["video_id"], "category_id": p["category_id"], "frame_index": 9,
                 "score": 0.9, "segmentation": p["segmentations"][0]}
    with pytest.raises(ValueError, match=r"detections\[0\].frame_index: 9"):
        score_detections(tiny_dataset, [detection])
