"""Mask plumbing shared by the linker and the metrics: COCO RLE <-> bool arrays.

Every mask that leaves this package is a COCO RLE with a *str* `counts` (JSON-safe, the form
the native dataset and sam3's evaluators use). Inputs may be RLEs (str, bytes or
uncompressed list counts) or 2-D bool/0-1 arrays.
"""
from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_util


def is_rle(mask) -> bool:
    return isinstance(mask, dict) and "counts" in mask and "size" in mask


def to_rle(mask) -> dict:
    """A JSON-safe compressed RLE for an RLE dict or a 2-D array (truthy = foreground)."""
    if is_rle(mask):
        counts = mask["counts"]
        if isinstance(counts, list):  # uncompressed RLE: compress it
            h, w = mask["size"]
            mask = mask_util.frPyObjects(mask, h, w)
            counts = mask["counts"]
        if isinstance(counts, bytes):
            counts = counts.decode("ascii")
        return {"size": [int(s) for s in mask["size"]], "counts": counts}
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"a mask must be 2-D (height, width), got shape {array.shape}")
    rle = mask_util.encode(np.asfortranarray(array.astype(bool, copy=False).astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def pycoco_rle(rle: dict) -> dict:
    # pycocotools' C API wants bytes counts; our stored form has str counts.
    counts = rle["counts"]
    return {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def decode(rle: dict | None, height: int, width: int) -> np.ndarray:
    """Bool (height, width) array; None (object absent in this frame) decodes to all False."""
    if rle is None:
        return np.zeros((height, width), dtype=bool)
    return mask_util.decode(pycoco_rle(to_rle(rle))).astype(bool)


def area(rle: dict) -> float:
    return float(mask_util.area(pycoco_rle(rle)))


def bbox(rle: dict) -> list[float]:
    """Absolute-pixel [x, y, w, h] of the mask (zeros for an empty mask)."""
    return [float(v) for v in mask_util.toBbox(pycoco_rle(rle))]


def intersection_area(a: dict, b: dict) -> float:
    return float(mask_util.area(mask_util.merge([pycoco_rle(a), pycoco_rle(b)], intersect=True)))


def iou_matrix(rows: list[dict], cols: list[dict]) -> np.ndarray:
    """Mask IoU of every row RLE against every column RLE, shape (len(rows), len(cols))."""
    if not rows or not cols:
        return np.zeros((len(rows), len(cols)))
    ious = mask_util.iou([pycoco_rle(r) for r in rows], [pycoco_rle(c) for c in cols], [0] * len(cols))
    return np.asarray(ious, dtype=float).reshape(len(rows), len(cols))


def frame_record(mask) -> tuple[dict | None, list[float] | None, float | None]:
    """(segmentation, bbox, area) for one frame of a masklet; an empty mask is 'absent' (None),
    as the YouTube-VIS format and sam3's HOTA evaluator expect."""
    if mask is None:
        return None, None, None
    rle = to_rle(mask)
    a = area(rle)
    if a == 0:
        return None, None, None
    return rle, bbox(rle), a
