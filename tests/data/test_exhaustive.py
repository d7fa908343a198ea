"""Negatives only from truly absent phrases: a video may mark phrases whose labels there are
not exhaustive (class-agnostic sets such as DAVIS or SA-V), and such a phrase, absent from
the video, is never a training negative nor a scored negative pair."""
from __future__ import annotations

from sam3_video.data import load_native
from sam3_video.data.loader import NativeGroundingLoader
from sam3_video.data.validate import validate_dataset
from sam3_video.metrics.ground_truth import load_annotations, to_saco_gt


def _mark_partial(dataset_copy, video_id: int, category_ids: list[int]) -> None:
    def change(data):
        for video in data["videos"]:
            if video["id"] == video_id:
                video["not_exhaustive_category_ids"] = category_ids
    dataset_copy.edit(change)


def test_a_not_exhaustive_phrase_is_no_negative(dataset_copy):
    before = load_native(dataset_copy.root)
    absent = sorted(set(before.categories) - {t.category_id for t in before.tracks_of(1)})
    present = sorted({t.category_id for t in before.tracks_of(1)})
    assert absent and present
    _mark_partial(dataset_copy, 1, [absent[0], present[0]])
    assert validate_dataset(dataset_copy.root) == []

    after = load_native(dataset_copy.root)
    pairs = set(after.video_phrase_pairs(include_negatives=True))
    assert (1, absent[0]) not in pairs          # not a sure negative: left out
    assert (1, present[0]) in pairs             # a positive stays, labelled or not
    assert set(before.video_phrase_pairs(include_negatives=True)) - pairs == {(1, absent[0])}

    loader = NativeGroundingLoader(dataset_copy.ann_file, include_negatives=True)
    assert absent[0] not in loader.absent_phrases(1)
    assert set(absent[1:]) <= set(loader.absent_phrases(1))

    saco = {(p["video_id"], p["category_id"])
            for p in to_saco_gt(load_annotations(dataset_copy.root))["video_np_pairs"]}
    assert (1, absent[0]) not in saco and (1, present[0]) in saco
    assert (2, absent[0]) in saco or absent[0] in {t.category_id for t in after.tracks_of(2)}


def test_without_the_field_every_absent_phrase_is_a_negative(synthetic_root):
    native = load_native(synthetic_root)
    pairs = native.video_phrase_pairs(include_negatives=True)
    assert len(pairs) == len(native.videos) * len(native.categories)


def test_bad_not_exhaustive_ids_are_named(dataset_copy):
    _mark_partial(dataset_copy, 1, [999])
    problems = [str(p) for p in validate_dataset(dataset_copy.root)]
    assert any("videos[0].not_exhaustive_category_ids" in p for p in problems), problems
