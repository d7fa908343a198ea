"""COCO run-length masks, the one module for them: check, encode, decode, measure.

Every mask this project writes is a COCO RLE with a *str* ``counts`` (JSON-safe, the form
of the native dataset and of sam3's evaluators). Inputs may be RLEs (str, bytes or
uncompressed list counts) or 2-D bool/0-1 arrays.

pycocotools' C decoder trusts the run lengths: counts that add up to more than h*w write
past the end of its buffer. So a mask from a user's file is checked here, in Python
(`rle_problem`), before pycocotools ever decodes it.
"""
from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_util


# ---------------------------------------------------------------------------- checking

def compressed_counts(counts: str) -> np.ndarray:
    """Decode COCO's compressed counts string into run lengths (rleFrString in maskApi.c).

    Each number is a run of 6-bit groups (char - 48), least significant first: 5 value
    bits, bit 5 = "another group follows", bit 4 of the last group = sign. From the third
    number on, each is a delta to the run two places back. Vectorised with numpy because
    a large dataset has hundreds of thousands of masks. Raises ValueError on characters
    outside the alphabet or a cut-off number.
    """
    try:
        raw = counts.encode("ascii")
    except UnicodeEncodeError as err:
        raise ValueError(f"character {counts[err.start]!r} at {err.start} is not valid RLE") from None
    groups = np.frombuffer(raw, np.uint8).astype(np.int64) - 48
    if len(groups) == 0:
        return np.zeros(0, np.int64)
    bad = np.flatnonzero((groups < 0) | (groups >= 64))
    if len(bad):
        raise ValueError(f"character {counts[bad[0]]!r} at {bad[0]} is not valid RLE")
    last = (groups & 0x20) == 0  # the last group of a number
    if not last[-1]:
        raise ValueError("counts string ends in the middle of a number")
    ends = np.flatnonzero(last)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 12:  # 60 bits: more would overflow (and is no real mask)
        raise ValueError("a run length is too large")
    shift = 5 * (np.arange(len(groups)) - np.repeat(starts, lengths))
    values = np.add.reduceat((groups & 0x1F) << shift, starts)
    negative = (groups[ends] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * lengths[negative])
    # run[i] = value[i] + run[i - 2] for i >= 3: a running sum over each parity, where the
    # even chain starts at index 2 (run[0] stands alone)
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def rle_problem(segmentation, height: int, width: int) -> str | None:
    """Why `segmentation` is not a usable RLE mask of a height x width frame, or None."""
    if not isinstance(segmentation, dict):
        if isinstance(segmentation, list):
            return polygon_problem(segmentation)
        return f"expected an RLE object {{size, counts}}, got {type(segmentation).__name__}"
    size, counts = segmentation.get("size"), segmentation.get("counts")
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in size)):
        return "RLE 'size' must be [height, width]"
    if size != [height, width]:
        return f"RLE size {size[0]}x{size[1]} does not match the video's {height}x{width} (h x w)"
    if isinstance(counts, str):
        try:
            runs = compressed_counts(counts)
        except ValueError as err:
            return f"RLE counts do not decode: {err}"
    elif isinstance(counts, list) and all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
        runs = np.array(counts, dtype=object)  # python ints: no overflow on absurd values
    else:
        return "RLE 'counts' must be a string (compressed) or a list of integers"
    if (runs < 0).any():
        return "RLE counts contain a negative run"
    covered = int(runs.sum())
    if covered != height * width:
        return f"RLE runs cover {covered} pixels, the frame has {height * width}"
    return None


def polygon_problem(polygons) -> str | None:
    """Why `polygons` is not a COCO polygon list [[x0, y0, x1, y1, ...], ...], or None."""
    if not polygons:
        return "polygon list is empty"
    for poly in polygons:
        if (not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           and np.isfinite(v) for v in poly)):
            return "a polygon must be a list of at least 3 x, y pairs (finite numbers)"
    return None


# ---------------------------------------------------------------------------- conversion

def polygons_to_rle(polygons: list, height: int, width: int) -> dict:
    """One compressed RLE of the union of COCO polygons (pycocotools rasterises them)."""
    return to_rle(mask_util.merge(mask_util.frPyObjects(polygons, height, width)))


def is_rle(mask) -> bool:
    return isinstance(mask, dict) and "counts" in mask and "size" in mask


def to_rle(mask) -> dict:
    """A JSON-safe compressed RLE for an RLE dict (any counts form) or a 2-D array
    (truthy = foreground)."""
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


def pycoco_rle(rle: dict, height: int | None = None, width: int | None = None) -> dict:
    """The form pycocotools' C API wants: bytes counts (ours are str; list counts compressed).
    Polygons (a list) are rasterised, which needs the frame size."""
    if isinstance(rle, list):
        return pycoco_rle(polygons_to_rle(rle, height, width))
    if isinstance(rle["counts"], list):
        rle = to_rle(rle)
    counts = rle["counts"]
    return {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def decode(rle: dict | None, height: int, width: int) -> np.ndarray:
    """Bool (height, width) array; None (object absent in this frame) decodes to all False."""
    if rle is None:
        return np.zeros((height, width), dtype=bool)
    return mask_util.decode(pycoco_rle(rle, height, width)).astype(bool)


# ---------------------------------------------------------------------------- measures

def area(rle: dict) -> float:
    """Foreground pixels of a (checked) RLE."""
    return float(mask_util.area(pycoco_rle(rle)))


def bbox(rle: dict) -> list[float]:
    """Tight absolute-pixel [x, y, w, h] of a (checked) RLE (zeros for an empty mask)."""
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
