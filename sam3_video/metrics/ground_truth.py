"""Ground truth for the video metrics, from a dataset in the native (YouTube-VIS style) format.

sam3's video evaluators want YouTube-VIS JSON plus two extras: a `noun_phrase` on every
annotation and `video_np_pairs`, the list of (video, phrase) pairs that were asked. We list
EVERY (video, phrase) combination, including phrases absent from a video (num_masklets 0):
these negative pairs are what cgF1's image-level MCC needs. With only positive pairs cgF1 is
0 whatever the predictions, so a dataset where every phrase appears in every video has no
meaningful cgF1 (score_predictions flags that in its notes).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from sam3_video.config import ConfigError

from sam3_video.data import masks


class GroundTruthError(ConfigError):
    """The dataset has no usable ground truth; the message names the file and the record.
    A ConfigError, so programs exit with the config/data code (never retried)."""

    def __init__(self, problem: str):
        super().__init__([problem])


def _read_native(dataset_dir: Path) -> dict:
    """annotations.json as a dict, validated by the data package's loader when it exists
    (it checks every RLE: pycocotools reads past the buffer of a corrupt one)."""
    try:
        from sam3_video.data.native import load_native
    except ImportError:
        load_native = None
    if load_native is not None:
        ds = load_native(dataset_dir)
        return {
            "videos": [{"id": v.id, "width": v.width, "height": v.height, "length": v.length,
                        "file_names": list(v.file_names),
                        "not_exhaustive_category_ids": sorted(v.not_exhaustive)}
                       for v in ds.videos.values()],
            "categories": [{"id": cid, "name": name} for cid, name in ds.categories.items()],
            "annotations": [{"id": t.id, "video_id": t.video_id, "category_id": t.category_id,
                             "iscrowd": int(t.iscrowd), "bboxes": list(t.bboxes),
                             "segmentations": list(t.segmentations)} for t in ds.tracks],
        }
    path = dataset_dir / "annotations.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise GroundTruthError(f"{path}: file not found (the dataset needs ground truth)") from None
    except json.JSONDecodeError as err:
        raise GroundTruthError(f"{path}: not valid JSON ({err})") from None


def load_annotations(dataset_dir: str | Path) -> dict:
    """The dataset's annotations (YouTube-VIS dict), checked for what the metrics rely on."""
    path = Path(dataset_dir) / "annotations.json"
    data = _read_native(Path(dataset_dir))
    for key in ("videos", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise GroundTruthError(f"{path}: '{key}' must be a list")
    if not data["annotations"]:
        raise GroundTruthError(f"{path}: no annotations: evaluation needs ground-truth masklets")
    lengths = {v["id"]: len(v["file_names"]) for v in data["videos"]}
    category_ids = {c["id"] for c in data["categories"]}
    for i, ann in enumerate(data["annotations"]):
        where = f"{path}: annotations[{i}] (id {ann.get('id')})"
        if ann.get("video_id") not in lengths:
            raise GroundTruthError(f"{where}: video_id {ann.get('video_id')!r} is not in 'videos'")
        if ann.get("category_id") not in category_ids:
            raise GroundTruthError(f"{where}: category_id {ann.get('category_id')!r} is not in 'categories'")
        segs = ann.get("segmentations")
        if not isinstance(segs, list) or len(segs) != lengths[ann["video_id"]]:
            raise GroundTruthError(f"{where}: 'segmentations' must hold one entry per frame "
                                   f"({lengths[ann['video_id']]})")
    return data


def to_saco_gt(annotations: dict) -> dict:
    """YouTube-VIS GT with noun phrases and every (video, phrase) pair, for sam3.eval."""
    gt = copy.deepcopy(annotations)
    phrase = {c["id"]: c["name"] for c in gt["categories"]}
    size = {v["id"]: (v["height"], v["width"]) for v in gt["videos"]}
    counts: dict[tuple[int, int], int] = {}
    for ann in gt["annotations"]:
        ann["noun_phrase"] = phrase[ann["category_id"]]
        ann.setdefault("iscrowd", 0)
        ann["height"], ann["width"] = size[ann["video_id"]]
        # HOTA asserts that mask, box and area are absent together; normalise from the mask.
        records = [masks.frame_record(s) for s in ann["segmentations"]]
        ann["segmentations"] = [r[0] for r in records]
        ann["bboxes"] = [r[1] for r in records]
        ann["areas"] = [r[2] for r in records]
        key = (ann["video_id"], ann["category_id"])
        counts[key] = counts.get(key, 0) + 1
    # An absent phrase that is not exhaustively labelled in a video is no true negative:
    # that pair is left out (not_exhaustive_category_ids, see sam3_video.data.native).
    partial = {(v["id"], c) for v in gt["videos"] for c in v.get("not_exhaustive_category_ids", ())}
    gt["video_np_pairs"] = [
        {"id": n, "video_id": v, "category_id": c, "noun_phrase": phrase[c],
         "num_masklets": counts.get((v, c), 0)}
        for n, (v, c) in enumerate(
            ((v["id"], c["id"]) for v in gt["videos"] for c in gt["categories"]
             if (v["id"], c["id"]) in counts or (v["id"], c["id"]) not in partial), start=1)
    ]
    gt.setdefault("info", {})
    gt.setdefault("licenses", [])
    return gt


def predictions_from_annotations(annotations: dict, score: float = 1.0) -> list[dict]:
    """Every ground-truth masklet as a prediction: what a perfect model would output."""
    preds = []
    for ann in to_saco_gt(annotations)["annotations"]:
        preds.append({"video_id": ann["video_id"], "category_id": ann["category_id"],
                      "score": score, "segmentations": ann["segmentations"],
                      "bboxes": ann["bboxes"], "areas": ann["areas"]})
    return preds


def predictions_from_ground_truth(dataset_dir: str | Path, score: float = 1.0) -> list[dict]:
    return predictions_from_annotations(load_annotations(dataset_dir), score)
