"""DAVIS J (region IoU) and F (boundary F-measure) on hand-made masks."""
import numpy as np
import pytest

from sam3_video.metrics import j_and_f


def _rect(y0, y1, x0, x1, shape=(100, 100)):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_region_similarity_is_iou():
    a, b = _rect(0, 10, 0, 10), _rect(0, 10, 5, 15)
    assert j_and_f.region_similarity(a, b) == pytest.approx(50 / 150)
    assert j_and_f.region_similarity(a, a) == 1.0
    empty = np.zeros_like(a)
    assert j_and_f.region_similarity(empty, empty) == 1.0   # correctly reported absent
    assert j_and_f.region_similarity(a, empty) == 0.0


def test_boundary_f_measure_uses_the_diagonal_tolerance():
    gt = _rect(20, 60, 20, 60)
    # 100x100 image: tolerance ceil(0.008 * 141.4) = 2 px
    assert j_and_f.boundary_f_measure(gt, gt) == 1.0
    assert j_and_f.boundary_f_measure(_rect(20, 60, 22, 62), gt) == 1.0   # 2 px: within
    assert j_and_f.boundary_f_measure(_rect(20, 60, 23, 63), gt) < 1.0    # 3 px: not
    far = j_and_f.boundary_f_measure(_rect(30, 70, 30, 70), gt)            # 10 px off
    assert 0.0 < far < 0.5
    empty = np.zeros_like(gt)
    assert j_and_f.boundary_f_measure(empty, empty) == 1.0
    assert j_and_f.boundary_f_measure(gt, empty) == 0.0


def test_unmatched_object_scores_zero_and_match_is_per_phrase():
    from sam3_video.data import masks
    seg = masks.to_rle(_rect(20, 60, 20, 60))
    gt = {"videos": [{"id": 1, "height": 100, "width": 100, "file_names": ["a", "b"]}],
          "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "segmentations": [seg, seg]},
                          {"id": 2, "video_id": 1, "category_id": 2, "segmentations": [seg, None]}]}
    # a perfect mask, but under the wrong phrase for object 2 and below threshold for object 1
    preds = [{"video_id": 1, "category_id": 1, "score": 0.4, "segmentations": [seg, seg]},
             {"video_id": 1, "category_id": 2, "score": 0.9, "segmentations": [seg, seg]}]
    out = j_and_f.j_and_f(gt, preds, score_threshold=0.5)
    by_id = {o["gt_id"]: o for o in out["per_object"]}
    assert by_id[1]["matched"] is False and by_id[1]["j_and_f"] == 0.0
    # object 2: frame 0 perfect, frame 1 predicted but absent -> J = F = 0.5
    assert by_id[2]["j"] == pytest.approx(0.5) and by_id[2]["f"] == pytest.approx(0.5)
    assert out["j_and_f"] == pytest.approx(0.25)


def test_frames_j_and_f_is_the_mean_over_frames():
    """The per-object mean the tracker's evaluation and the masklet J&F share."""
    gt = [_rect(20, 60, 20, 60), _rect(20, 60, 22, 62), np.zeros((100, 100), bool)]
    pred = [_rect(20, 60, 20, 60), _rect(20, 60, 20, 60), np.zeros((100, 100), bool)]
    j, f = j_and_f.frames_j_and_f(zip(pred, gt))
    assert j == pytest.approx((1 + 38 * 40 / (42 * 40) + 1) / 3)
    assert f == pytest.approx(1.0)  # 2 px off: within the tolerance
    from sam3_video.data import masks
    rles = [[masks.to_rle(m) for m in seq] for seq in (pred, gt)]
    assert j_and_f.masklet_j_and_f(*rles, 100, 100) == (j, f)
