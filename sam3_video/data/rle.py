"""COCO run-length masks: encode for writing, check before anything decodes them.

pycocotools' C decoder trusts the run lengths: counts that add up to more than h*w write
past the end of its buffer. So a mask from a user's file is checked here, in Python,
before pycocotools ever decodes it.
"""
from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_util


def encode_mask(mask: np.ndarray) -> dict:
    """A binary (h, w) mask -> COCO RLE with a str `counts` (JSON-ready)."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def compressed_counts(counts: str) -> list[int]:
    """Decode COCO's compressed counts string into run lengths (rleFrString in maskApi.c).

    Each number is a run of 6-bit groups (char - 48): 5 value bits, bit 5 = "more follows",
    bit 4 of the last group = sign. From the third run on, numbers are deltas to the run
    two places back. Raises ValueError on characters outside the alphabet or a cut-off number.
    """
    runs: list[int] = []
    pos, n = 0, len(counts)
    while pos < n:
        value, shift, more = 0, 0, True
        while more:
            if pos >= n:
                raise ValueError("counts string ends in the middle of a number")
            group = ord(counts[pos]) - 48
            if not 0 <= group < 64:
                raise ValueError(f"character {counts[pos]!r} at {pos} is not valid RLE")
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            pos += 1
            shift += 5
            if not more and group & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def rle_problem(segmentation, height: int, width: int) -> str | None:
    """Why `segmentation` is not a usable RLE mask of a height x width frame, or None."""
    if not isinstance(segmentation, dict):
        if isinstance(segmentation, list):
            return "polygon segmentations are not supported; convert them to RLE"
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
        runs = counts
    else:
        return "RLE 'counts' must be a string (compressed) or a list of integers"
    if any(r < 0 for r in runs):
        return "RLE counts contain a negative run"
    if sum(runs) != height * width:
        return f"RLE runs cover {sum(runs)} pixels, the frame has {height * width}"
    return None


def as_compressed(segmentation: dict) -> dict:
    """RLE with list counts -> compressed str counts (pycocotools' functions want those)."""
    if isinstance(segmentation["counts"], list):
        h, w = segmentation["size"]
        rle = mask_util.frPyObjects(segmentation, h, w)
        return {"size": [h, w], "counts": rle["counts"].decode("ascii")}
    return segmentation


def rle_box(segmentation: dict) -> list[float]:
    """Tight absolute xywh box of a checked RLE mask (all zeros for an empty mask)."""
    rle = as_compressed(segmentation)
    return [float(v) for v in mask_util.toBbox({"size": rle["size"], "counts": rle["counts"].encode()})]


def rle_area(segmentation: dict) -> int:
    rle = as_compressed(segmentation)
    return int(mask_util.area({"size": rle["size"], "counts": rle["counts"].encode()}))
