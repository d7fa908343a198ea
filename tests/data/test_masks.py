"""The RLE checks that stand between a user's file and pycocotools' unchecked decoder,
and the encoder and measures of the one mask module."""
from __future__ import annotations

import numpy as np
import pytest

from sam3_video.data.masks import area, bbox, compressed_counts, rle_problem, to_rle


def _runs_by_hand(mask: np.ndarray) -> list[int]:
    """Column-major runs, starting with a (possibly empty) run of zeros."""
    runs, value, length = [], 0, 0
    for pixel in mask.flatten(order="F"):
        if pixel != value:
            runs.append(length)
            value, length = pixel, 0
        length += 1
    return runs + [length]


@pytest.mark.parametrize("seed", range(5))
def test_compressed_counts_match_pycocotools_encoding(seed):
    rng = np.random.default_rng(seed)
    for _ in range(30):
        h, w = rng.integers(1, 50, 2)
        mask = rng.random((h, w)) < rng.random()
        rle = to_rle(mask)
        assert compressed_counts(rle["counts"]).tolist() == _runs_by_hand(mask)
        assert rle_problem(rle, int(h), int(w)) is None
        assert area(rle) == mask.sum()


def test_box_of_a_mask():
    mask = np.zeros((20, 30), bool)
    mask[4:9, 10:25] = True
    assert bbox(to_rle(mask)) == [10.0, 4.0, 15.0, 5.0]


@pytest.mark.parametrize("segmentation, reason", [
    ({"size": [4, 4], "counts": "~"}, "'~' at 0 is not valid RLE"),
    ({"size": [4, 4], "counts": "é"}, "not valid RLE"),
    ({"size": [4, 4], "counts": "1o"}, "ends in the middle of a number"),
    ({"size": [4, 4], "counts": "Ok9"}, "negative run"),
    ({"size": [4, 4], "counts": "0"}, "cover 0 pixels, the frame has 16"),
    ({"size": [4, 4], "counts": [3, 4]}, "cover 7 pixels"),
    ({"size": [4, 4], "counts": [10**30]}, "cover 1000000000000000000000000000000 pixels"),
    ({"size": [4, 5], "counts": [20]}, "does not match the video's 4x4"),
    ({"size": [4, 4]}, "'counts' must be"),
    ([[1.0, 2.0, 3.0, 4.0]], "at least 3 x, y pairs"),
    ([], "polygon list is empty"),
    ("abc", "expected an RLE object"),
])
def test_bad_rles_are_explained(segmentation, reason):
    assert reason in rle_problem(segmentation, 4, 4)


def test_uncompressed_counts_are_accepted():
    assert rle_problem({"size": [4, 4], "counts": [3, 4, 9]}, 4, 4) is None
    assert area({"size": [4, 4], "counts": [3, 4, 9]}) == 4
