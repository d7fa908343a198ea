"""score_predictions: every video metric for a set of predicted masklets, plus a headline map."""
from __future__ import annotations

import math
from pathlib import Path

from sam3_video.data import masks

from . import ground_truth, linking, saco
from .j_and_f import j_and_f

# Headline name -> key in sam3's dataset_results (mask versions: we segment, not box).
SACO_HEADLINE = {
    "mask_ap": "video_mask_mAP_50_95",
    "phrase_ap": "video_mask_phrase_ap_50_95",
    "hota": "video_mask_all_phrase_HOTA",
    "teta": "video_mask_teta",
    "cgf1": "video_mask_demo_cgf1_micro_50_95",
}
HEADLINE_KEYS = (*SACO_HEADLINE, "j_and_f")
# sam3's TETA toolkit reports percentages; everything else is already a fraction.
PERCENT_METRICS = {"teta"}


def _unit(value) -> float:
    """A metric as a float in 0..1. COCO-style code reports 'undefined' as -1 or NaN and
    cgF1 goes negative when worse than chance; the headline shows all of these as 0
    (the raw values stay in results["saco"])."""
    value = float(value)
    if math.isnan(value):
        return 0.0
    return min(1.0, max(0.0, value))


def check_predictions(gt: dict, predictions: list[dict]) -> list[dict]:
    """Predictions normalised to JSON-safe RLEs with boxes/areas derived from the masks.
    Raises ValueError naming the prediction and field that is wrong."""
    lengths = {v["id"]: len(v["file_names"]) for v in gt["videos"]}
    category_ids = {c["id"] for c in gt["categories"]}
    clean = []
    for i, p in enumerate(predictions):
        for key in ("video_id", "category_id", "score", "segmentations"):
            if key not in p:
                raise ValueError(f"predictions[{i}]: missing '{key}'")
        if p["video_id"] not in lengths:
            raise ValueError(f"predictions[{i}].video_id: {p['video_id']!r} is not a video of the dataset")
        if p["category_id"] not in category_ids:
            raise ValueError(f"predictions[{i}].category_id: {p['category_id']!r} is not a category of the dataset")
        if len(p["segmentations"]) != lengths[p["video_id"]]:
            raise ValueError(f"predictions[{i}].segmentations: {len(p['segmentations'])} frames, "
                             f"the video has {lengths[p['video_id']]}")
        records = [masks.frame_record(s) for s in p["segmentations"]]
        clean.append({"video_id": p["video_id"], "category_id": p["category_id"],
                      "score": float(p["score"]), "segmentations": [r[0] for r in records],
                      "bboxes": [r[1] for r in records], "areas": [r[2] for r in records]})
    return clean


def _notes(gt: dict, predictions: list[dict]) -> list[str]:
    notes = []
    if not any(pair["num_masklets"] == 0 for pair in gt["video_np_pairs"]):
        notes.append("every (video, phrase) pair is positive: cgF1 is 0 by construction "
                     "(it needs phrases absent from some videos)")
    if not predictions:
        notes.append("no predicted masklets: every metric is 0")
    return notes


def score_predictions(dataset_dir: str | Path, predictions: list[dict],
                      score_threshold: float = 0.5) -> dict:
    """All metrics of `predictions` (sam3 masklet format) against the dataset's ground truth.

    Returns {"headline": {mask_ap, phrase_ap, hota, teta, cgf1, j_and_f} (floats 0..1),
    "saco": every metric of sam3's evaluators, "davis": {j, f, j_and_f, per_object},
    "video_np_results", "counts", "notes"}. score_threshold applies to J&F; sam3's HOTA,
    TETA and cgF1 use their own fixed 0.5.
    """
    annotations = ground_truth.load_annotations(dataset_dir)
    gt = ground_truth.to_saco_gt(annotations)
    predictions = check_predictions(gt, predictions)

    if predictions:
        suite = saco.run_saco_suite(gt, predictions)
        saco_results = {k: float(v) for k, v in suite["dataset_results"].items()}
        video_np_results = suite["video_np_results"]
    else:  # the upstream loaders index predictions[0]; nothing predicted scores nothing
        saco_results = {key: 0.0 for key in SACO_HEADLINE.values()}
        video_np_results = []
    davis_results = j_and_f(gt, predictions, score_threshold)

    headline = {}
    for name, key in SACO_HEADLINE.items():
        value = saco_results.get(key, float("nan"))
        headline[name] = _unit(value / 100 if name in PERCENT_METRICS else value)
    headline["j_and_f"] = _unit(davis_results["j_and_f"])
    return {
        "headline": headline,
        "saco": saco_results,
        "davis": davis_results,
        "video_np_results": video_np_results,
        "counts": {"videos": len(gt["videos"]), "phrases": len(gt["categories"]),
                   "gt_masklets": len(gt["annotations"]), "predicted_masklets": len(predictions),
                   "video_phrase_pairs": len(gt["video_np_pairs"]),
                   "negative_pairs": sum(p["num_masklets"] == 0 for p in gt["video_np_pairs"])},
        "notes": _notes(gt, predictions),
    }


def score_detections(dataset_dir: str | Path, detections: list[dict], *,
                     link_threshold: float = 0.05, score_threshold: float = 0.5) -> dict:
    """The detector-only path end to end: link flat per-frame detections into masklets
    (sam3_video.metrics.linking), then score_predictions. Returns its results plus
    "linking" and "predictions" (the masklets).

    link_threshold is the score a detection needs to start or extend a masklet. It is low
    on purpose: AP ranks every candidate, so dropping weak masklets early would only lower
    it; HOTA, cgF1 and J&F then apply their 0.5 threshold to the masklet scores (the mean
    of each masklet's confident frames, see linking)."""
    annotations = ground_truth.load_annotations(dataset_dir)
    lengths = {v["id"]: len(v["file_names"]) for v in annotations["videos"]}
    predictions = linking.link_dataset_detections(detections, lengths, score_threshold=link_threshold,
                                                  extend_threshold=link_threshold)
    results = score_predictions(dataset_dir, predictions, score_threshold=score_threshold)
    results["linking"] = linking.LINKING_METHOD
    results["predictions"] = predictions
    return results


def flat_metrics(results: dict) -> dict[str, float]:
    """The numbers worth plotting from score_predictions/score_detections results: the
    headline map plus DAVIS J and F and the masklet count (flat, floats)."""
    return {**results["headline"], "j": _unit(results["davis"]["j"]),
            "f": _unit(results["davis"]["f"]),
            "num_masklets": float(results["counts"]["predicted_masklets"])}
