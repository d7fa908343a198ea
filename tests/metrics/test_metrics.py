"""The metric plumbing through sam3's real evaluators: perfect and degraded predictions."""
import json
import math
from collections import Counter

import numpy as np
import pytest

from sam3_video.config import ConfigError
from sam3_video.metrics import (HEADLINE_KEYS, load_annotations,
                                   predictions_from_ground_truth, score_predictions)

from .conftest import write_dataset


def coco_ap_with_one_miss(n: int) -> float:
    """AP of a class with n ground-truth masklets when n-1 are found perfectly and one is
    missed. Precision is 1 at every reached recall; COCO samples interpolated precision at
    101 recall thresholds 0, 0.01, ..., 1 and counts 0 for thresholds above the maximum
    recall (n-1)/n. So AP = #{thresholds <= (n-1)/n} / 101, the same at every IoU threshold.
    With n = 1 the class has no detection at all: no precision anywhere, AP = 0."""
    if n == 1:
        return 0.0
    recall_thresholds = np.linspace(0.0, 1.0, 101)
    return np.count_nonzero(recall_thresholds <= (n - 1) / n) / 101


def test_ground_truth_as_predictions_scores_perfectly(any_dataset):
    gt = load_annotations(any_dataset)
    result = score_predictions(any_dataset, predictions_from_ground_truth(any_dataset))
    head = result["headline"]
    assert set(HEADLINE_KEYS) <= set(head)
    assert head["mask_ap"] == 1.0
    assert head["phrase_ap"] == 1.0
    assert head["j_and_f"] == 1.0
    assert head["hota"] == pytest.approx(1.0)
    assert head["teta"] == pytest.approx(1.0)
    assert head["cgf1"] == pytest.approx(1.0, abs=1e-3)   # MCC carries a small epsilon
    assert result["counts"]["negative_pairs"] > 0
    assert result["notes"] == []
    assert len(result["davis"]["per_object"]) == len(gt["annotations"])


# tiny: masklet 0 shares its class with another, masklet 4 is alone in its class (AP 0);
# synthetic: masklet 1 leaves the frame (absent in some frames).
@pytest.mark.parametrize("dataset, dropped", [("tiny_dataset", 0), ("tiny_dataset", 4),
                                              ("synthetic_dataset", 1)])
def test_dropping_one_masklet_lowers_metrics_by_the_expected_amount(request, dataset, dropped):
    root = request.getfixturevalue(dataset)
    gt = load_annotations(root)
    preds = predictions_from_ground_truth(root)
    missing = preds.pop(dropped)
    head = score_predictions(root, preds)["headline"]

    n_objects = len(gt["annotations"])
    per_class = Counter(a["category_id"] for a in gt["annotations"])
    # mask mAP: mean over classes with ground truth; only the dropped one's class loses.
    expected_map = np.mean([coco_ap_with_one_miss(n) if c == missing["category_id"] else 1.0
                            for c, n in per_class.items()])
    assert head["mask_ap"] == pytest.approx(expected_map)
    # phrase AP ignores classes (each (video, phrase) is its own image): one pool of N.
    assert head["phrase_ap"] == pytest.approx(coco_ap_with_one_miss(n_objects))
    # J&F is a mean over objects; the missed object scores 0.
    assert head["j_and_f"] == pytest.approx(1 - 1 / n_objects)
    # HOTA = sqrt(DetA * AssA); no false positives and perfect association, so AssA = 1 and
    # DetA = found frame-detections / all ground-truth frame-detections.
    frames = lambda a: sum(s is not None for s in a["segmentations"])
    total = sum(frames(a) for a in gt["annotations"])
    assert head["hota"] == pytest.approx(math.sqrt((total - frames(missing)) / total))


def test_extra_false_masklet_lowers_precision_metrics(tiny_dataset):
    preds = predictions_from_ground_truth(tiny_dataset)
    ghost = dict(preds[0], video_id=2)   # video 1's red square pasted under video 2
    result = score_predictions(tiny_dataset, preds + [ghost])
    assert result["headline"]["j_and_f"] == 1.0      # recall-only per object
    assert result["headline"]["cgf1"] < 0.99         # a negative (video, phrase) got a hit
    assert result["headline"]["hota"] < 0.99


def test_no_predictions_scores_zero_with_a_note(tiny_dataset):
    result = score_predictions(tiny_dataset, [])
    assert all(v == 0.0 for v in result["headline"].values())
    assert any("no predicted masklets" in n for n in result["notes"])


def test_only_positive_pairs_is_flagged(tmp_path):
    # every phrase in every video: cgF1 has no negatives to score
    root = tmp_path / "all_positive"
    write_dataset(root, objects=[(1, 1, 5, 5), (2, 1, 30, 20)])
    data = json.loads((root / "annotations.json").read_text())
    data["categories"] = data["categories"][:1]
    (root / "annotations.json").write_text(json.dumps(data))
    result = score_predictions(root, predictions_from_ground_truth(root))
    assert result["headline"]["mask_ap"] == 1.0
    assert result["headline"]["cgf1"] == 0.0
    assert any("cgF1 is 0 by construction" in n for n in result["notes"])


def test_dataset_without_ground_truth_is_refused(tmp_path):
    root = tmp_path / "unlabelled"
    data = write_dataset(root)
    data["annotations"] = []
    (root / "annotations.json").write_text(json.dumps(data))
    # a ConfigError: the evaluator exits with the config/data code, never retried
    with pytest.raises(ConfigError, match="no annotations"):
        score_predictions(root, [])


def test_bad_prediction_names_the_field(tiny_dataset):
    preds = predictions_from_ground_truth(tiny_dataset)
    with pytest.raises(ValueError, match=r"predictions\[1\].video_id: 99"):
        score_predictions(tiny_dataset, [preds[0], dict(preds[1], video_id=99)])
    with pytest.raises(ValueError, match=r"predictions\[0\].segmentations: 3 frames"):
        score_predictions(tiny_dataset, [dict(preds[0], segmentations=preds[0]["segmentations"][:3])])


def test_only_unconfident_predictions_rank_for_ap_but_detect_nothing(tiny_dataset):
    # Below the 0.5 threshold masklets still rank for AP, but HOTA, TETA, cgF1 and J&F see
    # no detection (sam3's TETA toolkit would crash on that; we report 0).
    result = score_predictions(tiny_dataset, predictions_from_ground_truth(tiny_dataset, score=0.3))
    head = result["headline"]
    assert head["mask_ap"] == 1.0 and head["phrase_ap"] == 1.0
    assert head["hota"] == 0.0 and head["teta"] == 0.0
    assert head["cgf1"] == 0.0 and head["j_and_f"] == 0.0


SIGTERM_CATCHER = """
import signal, sys
signal.signal(signal.SIGTERM, lambda *a: None)   # as the trainer does, to checkpoint
from sam3_video.metrics import predictions_from_ground_truth, score_predictions
result = score_predictions(sys.argv[1], predictions_from_ground_truth(sys.argv[1]))
print("mask_ap", result["headline"]["mask_ap"])
"""


def test_suite_finishes_in_a_process_that_catches_sigterm(tmp_path):
    # sam3's HOTA/TETA Pools are terminated with SIGTERM; workers that inherited a catching
    # handler never exited and the evaluation hung (seen in the trainer).
    import os
    import signal
    import subprocess
    import sys
    from sam3_video.data import write_synthetic
    write_synthetic(tmp_path / "clips", videos=6, frames=8, seed=1)
    # Output to a file, not a pipe: hung pool workers would hold a pipe open forever.
    log = tmp_path / "out.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", SIGTERM_CATCHER, str(tmp_path / "clips")],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=150)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)   # the hang: take the pool workers too
                proc.wait()
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert "mask_ap 1.0" in log.read_text()
