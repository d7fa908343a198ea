"""Video metrics for predicted masklets: sam3's own evaluators plus DAVIS J&F.

    j_and_f.py       J&F (region IoU and boundary F) per object, and over a dataset's masklets
    saco.py          sam3's video evaluator suite (mAP, phrase AP, HOTA, TETA, cgF1), sandboxed
    ground_truth.py  a native dataset as sam3.eval's ground truth; the perfect prediction set
    linking.py       per-frame detections of one (video, phrase) -> masklets (IoU + motion, Hungarian)
    scoring.py       every metric of a prediction set, plus the headline map

    link_detections(frame_detections, video_id=, category_id=)  per-frame detections -> masklets
    link_dataset_detections(detections, video_lengths)          ... for a whole dataset
    score_predictions(dataset_dir, predictions)                 -> {"headline": {...}, ...}
    score_detections(dataset_dir, detections)                   link, then score
    flat_metrics(results)                                       headline + J, F: for metric lines
    predictions_from_ground_truth(dataset_dir)                  the perfect prediction set

A prediction (masklet) is {"video_id", "category_id", "score", "segmentations": [RLE | None
per frame], "bboxes", "areas"}, the format of sam3.eval. This package knows nothing of
models: the evaluator and the trainer turn model outputs into masklets and call it.
"""
from .ground_truth import GroundTruthError, load_annotations, predictions_from_ground_truth
from .linking import LINKING_METHOD, link_dataset_detections, link_detections
from .scoring import HEADLINE_KEYS, flat_metrics, score_detections, score_predictions

__all__ = [
    "GroundTruthError", "HEADLINE_KEYS", "flat_metrics", "LINKING_METHOD", "link_dataset_detections",
    "link_detections", "load_annotations", "predictions_from_ground_truth",
    "score_detections", "score_predictions",
]
