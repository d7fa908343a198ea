"""validate_dataset: clean data passes; every kind of breakage is reported with its file
and record, and all of them at once, not just the first."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sam3_video.config import ConfigError
from sam3_video.data import DatasetError, load_native, validate_dataset
from sam3_video.data.masks import to_rle

ANN = "annotations.json"


def test_synthetic_dataset_is_valid(synthetic_root):
    assert validate_dataset(synthetic_root) == []


def _locations(problems):
    return {(p.file, p.record) for p in problems}


def test_missing_frame_names_file_and_record(dataset_copy):
    (dataset_copy.root / "JPEGImages/video_001/00002.jpg").unlink()
    problems = validate_dataset(dataset_copy.root)
    assert _locations(problems) == {("JPEGImages/video_001/00002.jpg", "videos[1].file_names[2]")}
    assert "not found" in problems[0].message


def test_frame_of_wrong_size(dataset_copy):
    Image.new("RGB", (40, 30)).save(dataset_copy.root / "JPEGImages/video_002/00004.jpg")
    problems = validate_dataset(dataset_copy.root)
    assert _locations(problems) == {("JPEGImages/video_002/00004.jpg", "videos[2].file_names[4]")}
    assert "40x30" in problems[0].message and "64x48" in problems[0].message


def test_frame_that_is_not_an_image(dataset_copy):
    (dataset_copy.root / "JPEGImages/video_000/00001.jpg").write_bytes(b"not a jpeg")
    problems = validate_dataset(dataset_copy.root)
    assert _locations(problems) == {("JPEGImages/video_000/00001.jpg", "videos[0].file_names[1]")}


def test_bad_rle_counts(dataset_copy):
    dataset_copy.edit(lambda d: d["annotations"][0]["segmentations"][1].update(counts="zz~~"))
    problems = validate_dataset(dataset_copy.root)
    assert _locations(problems) == {(ANN, "annotations[0].segmentations[1]")}
    assert "do not decode" in problems[0].message


def test_rle_runs_that_overflow_the_frame(dataset_copy):
    # a valid RLE of a taller mask, labelled with the frame's size: pycocotools would
    # write past its buffer decoding this
    taller = to_rle(np.ones((60, 64), np.uint8))
    dataset_copy.edit(lambda d: d["annotations"][2]["segmentations"][3].update(counts=taller["counts"]))
    problems = validate_dataset(dataset_copy.root)
    assert _locations(problems) == {(ANN, "annotations[2].segmentations[3]")}
    assert "3840 pixels" in problems[0].message and "3072" in problems[0].message


def test_rle_size_differs_from_video(dataset_copy):
    dataset_copy.edit(lambda d: d["annotations"][3]["segmentations"][0].update(size=[64, 48]))
    problems = validate_dataset(dataset_copy.root)
    assert _locations(problems) == {(ANN, "annotations[3].segmentations[0]")}
    assert "does not match" in problems[0].message


def test_box_outside_frame(dataset_copy):
    def move(d):
        d["annotations"][0]["bboxes"][4] = [50.0, 10.0, 30.0, 12.0]  # x + w = 80 > 64
    dataset_copy.edit(move)
    problems = validate_dataset(dataset_copy.root)
    assert _locations(problems) == {(ANN, "annotations[0].bboxes[4]")}
    assert "outside" in problems[0].message


def test_box_that_disagrees_with_its_mask(dataset_copy):
    def shrink(d):
        x, y, _, _ = d["annotations"][0]["bboxes"][2]
        # a 4x4 box in a corner the object does not touch: inside the frame, far from the mask
        corner = [0.0, 0.0] if x + y > 20 else [58.0, 42.0]
        d["annotations"][0]["bboxes"][2] = corner + [4.0, 4.0]
    dataset_copy.edit(shrink)
    problems = validate_dataset(dataset_copy.root)
    assert _locations(problems) == {(ANN, "annotations[0].bboxes[2]")}
    assert "does not match its mask" in problems[0].message


def test_unknown_category(dataset_copy):
    dataset_copy.edit(lambda d: d["annotations"][1].update(category_id=99))
    problems = validate_dataset(dataset_copy.root)
    assert _locations(problems) == {(ANN, "annotations[1].category_id")}


def test_unknown_video(dataset_copy):
    dataset_copy.edit(lambda d: d["annotations"][1].update(video_id=42))
    assert _locations(validate_dataset(dataset_copy.root)) == {(ANN, "annotations[1].video_id")}


def test_per_frame_list_length_mismatch(dataset_copy):
    dataset_copy.edit(lambda d: d["annotations"][4]["segmentations"].pop())
    problems = validate_dataset(dataset_copy.root)
    assert _locations(problems) == {(ANN, "annotations[4].segmentations")}
    assert "5 entries" in problems[0].message and "6 frames" in problems[0].message


def test_video_length_mismatch(dataset_copy):
    dataset_copy.edit(lambda d: d["videos"][0].update(length=7))
    assert _locations(validate_dataset(dataset_copy.root)) == {(ANN, "videos[0].length")}


def test_malformed_json(dataset_copy):
    text = dataset_copy.ann_file.read_text()
    dataset_copy.ann_file.write_text(text[: len(text) // 2])
    problems = validate_dataset(dataset_copy.root)
    assert len(problems) == 1
    assert problems[0].file == ANN and problems[0].record.startswith("line 1 column ")
    assert "not valid JSON" in problems[0].message


def test_missing_annotation_file(dataset_copy):
    dataset_copy.ann_file.unlink()
    assert [(p.file, p.message) for p in validate_dataset(dataset_copy.root)] == [(ANN, "file not found")]


def test_duplicate_ids_and_missing_keys(dataset_copy):
    def break_it(d):
        d["videos"][1]["id"] = d["videos"][0]["id"]
        del d["categories"][2]["name"]
        del d["annotations"][0]["bboxes"]
    dataset_copy.edit(break_it)
    locations = _locations(validate_dataset(dataset_copy.root))
    assert {(ANN, "videos[1].id"), (ANN, "categories[2].name"), (ANN, "annotations[0].bboxes")} <= locations


def test_null_in_only_one_of_box_and_mask(dataset_copy):
    dataset_copy.edit(lambda d: d["annotations"][0]["segmentations"].__setitem__(3, None))
    assert _locations(validate_dataset(dataset_copy.root)) == {(ANN, "annotations[0].bboxes[3]")}


def test_empty_dataset(dataset_copy):
    dataset_copy.edit(lambda d: (d["annotations"].clear(), d["videos"].clear()))
    assert _locations(validate_dataset(dataset_copy.root)) == {(ANN, "videos"), (ANN, "annotations")}


def test_every_problem_is_reported_not_just_the_first(dataset_copy):
    (dataset_copy.root / "JPEGImages/video_000/00000.jpg").unlink()
    (dataset_copy.root / "JPEGImages/video_002/00005.jpg").unlink()

    def break_it(d):
        d["annotations"][0]["segmentations"][0]["counts"] = "~"
        d["annotations"][3]["category_id"] = 77
        d["annotations"][5]["bboxes"][1] = [-20.0, 0.0, 10.0, 10.0]
    dataset_copy.edit(break_it)
    assert _locations(validate_dataset(dataset_copy.root)) == {
        ("JPEGImages/video_000/00000.jpg", "videos[0].file_names[0]"),
        ("JPEGImages/video_002/00005.jpg", "videos[2].file_names[5]"),
        (ANN, "annotations[0].segmentations[0]"),
        (ANN, "annotations[3].category_id"),
        (ANN, "annotations[5].bboxes[1]"),
    }


def test_load_native_refuses_a_broken_dataset_with_every_problem(dataset_copy):
    def break_it(d):
        d["annotations"][1]["category_id"] = 99
        d["annotations"][2]["segmentations"][0]["counts"] = "~"
    dataset_copy.edit(break_it)
    with pytest.raises(DatasetError) as caught:
        load_native(dataset_copy.root)
    assert isinstance(caught.value, ConfigError)  # so the trainer exits with CONFIG_ERROR
    assert len(caught.value.problems) == 2
    assert "annotations.json annotations[1].category_id" in caught.value.problems[0]
