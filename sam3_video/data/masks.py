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
        runs = np.array(counts, dtype=object)  # python ints: no overflow on absurd values
    else:
        return "RLE 'counts' must be a string (compressed) or a list of integers"
    if (runs < 0).any():
        return "RLE counts contain a negative run"
    covered = int(runs.sum())
    if covered != height * width:
        return f"RLE runs cover {covered} pixels, the frame has {height * width}"
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
