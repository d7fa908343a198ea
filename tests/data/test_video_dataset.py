"""make_video_dataset / collate / eval_clips over the real sam3 dataset and collator."""
from __future__ import annotations

import random

import pytest
import torch

from sam3_video.data import DatasetError, collate, eval_clips, load_native, make_video_dataset

from .conftest import SMALL

SIZE = 56  # a multiple of the ViT patch (14)
T = 4


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)


def test_collated_batch_has_t_frames_with_masks_and_normalised_boxes(synthetic_root):
    dataset = make_video_dataset(synthetic_root, image_size=SIZE, frames_per_clip=T)
    # positives only: 2 (video, phrase) pairs per video
    assert len(dataset) == 2 * SMALL["videos"]
    batch = collate([dataset[2], dataset[3]])
    assert batch.img_batch.shape == (2 * T, 3, SIZE, SIZE)
    assert len(batch.find_inputs) == len(batch.find_targets) == T
    for frame, (stage, target) in enumerate(zip(batch.find_inputs, batch.find_targets)):
        assert stage.img_ids.tolist() == [frame, T + frame]  # clip b's frame t is image b*T+t
        boxes = target.boxes.view(-1, 4)  # normalised cx, cy, w, h
        assert len(boxes) == target.num_boxes.sum() >= 1
        assert ((boxes >= 0) & (boxes <= 1)).all() and (boxes[:, 2:] > 0).all()
        assert target.segments.shape == (len(boxes), SIZE, SIZE)
        for box, mask in zip(boxes, target.segments):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert len(xs) > 0
            # the box's centre lies on the mask's extent (both in the resized frame)
            assert xs.min() - 1 <= box[0] * SIZE <= xs.max() + 1
            assert ys.min() - 1 <= box[1] * SIZE <= ys.max() + 1
    assert set(batch.find_text_batch) <= set(load_native(synthetic_root).categories.values())


def test_absent_frames_have_no_target(synthetic_root):
    native = load_native(synthetic_root)
    crossing = native.tracks_of(1)[1]  # enters after frame 0, leaves before the last frame
    dataset = make_video_dataset(synthetic_root, image_size=SIZE, frames_per_clip=T, training=False)
    index = [(r.video_id, r.category_id) for r in dataset.coco.datapoints].index((1, crossing.category_id))
    batch = collate([dataset[index]])
    per_frame = [int(t.num_boxes.sum()) for t in batch.find_targets]
    assert len(per_frame) == SMALL["frames"]  # training=False: every frame
    assert per_frame == [1 if box is not None else 0 for box in crossing.bboxes]
    assert per_frame[0] == 0 and per_frame[-1] == 0


def test_frame_sampling_depends_only_on_dataset_rng(synthetic_root):
    """What exact resume relies on: reseeding dataset.rng reproduces an item, whatever the
    global random state."""
    dataset = make_video_dataset(synthetic_root, image_size=SIZE, frames_per_clip=3,
                                 stride_min=1, stride_max=2, random_reverse=True)

    def sample(global_seed):
        random.seed(global_seed)
        torch.manual_seed(global_seed)
        dataset.rng.seed(1234)
        return dataset[1]

    a, b = sample(0), sample(99)
    assert torch.equal(torch.stack([i.data for i in a.images]), torch.stack([i.data for i in b.images]))
    seen = set()
    for seed in range(12):
        dataset.rng.seed(seed)
        item = dataset[1]
        seen.add(tuple(o.frame_index for img in item.images for o in img.objects))
    assert len(seen) > 1  # different seeds pick different windows / directions


def test_clip_longer_than_every_video_is_a_clear_error(synthetic_root):
    with pytest.raises(DatasetError, match="no video has the 7 frames"):
        make_video_dataset(synthetic_root, image_size=SIZE, frames_per_clip=7)


def test_missing_frame_raises_instead_of_loading_another_clip(dataset_copy):
    (dataset_copy.root / "JPEGImages/video_000/00001.jpg").unlink()
    dataset = make_video_dataset(dataset_copy.root, image_size=SIZE, frames_per_clip=T, training=False)
    with pytest.raises(FileNotFoundError, match="video_000/00001.jpg"):
        dataset[0]


def test_eval_clips_cover_every_frame_deterministically(synthetic_root):
    first = list(eval_clips(synthetic_root, image_size=SIZE, frames_per_clip=T))
    second = list(eval_clips(synthetic_root, image_size=SIZE, frames_per_clip=T))
    native = load_native(synthetic_root)
    pairs = [(c.video_id, c.category_id) for c in first]
    # every phrase for every video (negatives too), each video cut into [0..3] and [4, 5]
    assert pairs == [p for p in native.video_phrase_pairs(include_negatives=True) for _ in range(2)]
    assert [c.frame_indices for c in first[:2]] == [[0, 1, 2, 3], [4, 5]]
    for a, b in zip(first, second):
        assert a.frame_indices == b.frame_indices
        assert torch.equal(collate([a.datapoint]).img_batch, collate([b.datapoint]).img_batch)
    # each frame's query targets exactly that phrase's objects visible in that frame
    for clip in first:
        per_frame = [len(q.object_ids_output) for q in clip.datapoint.find_queries]
        expected = [sum(tr.bboxes[f] is not None for tr in native.tracks_of(clip.video_id, clip.category_id))
                    for f in clip.frame_indices]
        assert per_frame == expected
    assert any(all(not q.object_ids_output for q in c.datapoint.find_queries) for c in first)  # negatives


def test_eval_clips_whole_video(synthetic_root):
    clips = list(eval_clips(synthetic_root, image_size=SIZE, include_negatives=False))
    assert len(clips) == 2 * SMALL["videos"]
    assert all(c.frame_indices == list(range(SMALL["frames"])) for c in clips)
    assert collate([c.datapoint for c in clips[:2]]).img_batch.shape[0] == 2 * SMALL["frames"]


# -- negatives: clips asked for a phrase absent from their video ------------------------

def _phrases_of(native, video_id):
    return {native.categories[tr.category_id] for tr in native.tracks_of(video_id)}


def test_negative_ratio_one_gives_every_clip_an_absent_phrase_and_no_target(synthetic_root):
    native = load_native(synthetic_root)
    dataset = make_video_dataset(synthetic_root, image_size=SIZE, frames_per_clip=T,
                                 negative_ratio=1.0)
    elsewhere = {native.categories[tr.category_id] for tr in native.tracks}
    for seed in range(3):
        for index in range(len(dataset)):
            dataset.rng.seed(seed)
            item = dataset[index]
            ref = dataset.coco.datapoints[index]
            phrases = {q.query_text for q in item.find_queries}
            assert len(phrases) == 1 and len(item.find_queries) == T
            phrase = phrases.pop()
            assert phrase not in _phrases_of(native, ref.video_id)  # truly absent
            assert phrase in elsewhere  # a phrase of another video's objects
            assert all(q.object_ids_output == [] for q in item.find_queries)
            assert all(img.objects == [] for img in item.images)
            assert dataset.coco.datapoints[index] == ref  # the swap is undone
    batch = collate([dataset[0], dataset[1]])
    assert all(int(t.num_boxes.sum()) == 0 for t in batch.find_targets)


def test_negative_ratio_is_the_fraction_of_negative_clips(synthetic_root):
    dataset = make_video_dataset(synthetic_root, image_size=SIZE, frames_per_clip=T,
                                 negative_ratio=0.3)
    draws = []
    for seed in range(3000):
        dataset.rng.seed(seed)
        draws.append(dataset.negative_phrase(seed % len(dataset)) is not None)
    assert abs(sum(draws) / len(draws) - 0.3) < 0.03
    # the items themselves: a negative asks for another phrase and has no target
    native = load_native(synthetic_root)
    negatives = 0
    for seed in range(40):
        index = seed % len(dataset)
        dataset.rng.seed(seed)
        item = dataset[index]
        ref = dataset.coco.datapoints[index]
        phrase = item.find_queries[0].query_text
        if phrase == native.categories[ref.category_id]:
            assert any(q.object_ids_output for q in item.find_queries)
        else:
            negatives += 1
            assert phrase not in _phrases_of(native, ref.video_id)
            assert all(not q.object_ids_output for q in item.find_queries)
    assert 4 <= negatives <= 22
    # ratio 0 (today's behaviour): every clip keeps its phrase, and nothing extra is drawn
    plain = make_video_dataset(synthetic_root, image_size=SIZE, frames_per_clip=T)
    assert plain.negative_ratio == 0.0
    plain.rng.seed(5)
    state = plain.rng.getstate()
    assert plain.negative_phrase(0) is None and plain.rng.getstate() == state


def test_negatives_come_from_the_per_item_seed(synthetic_root):
    """What exact resume needs: SeededSamples reseeds dataset.rng per (index, seed), so an
    item's phrase (negative or not) and frames do not depend on what was loaded before."""
    from sam3_video.sampler import SeededSamples

    def fingerprint(item):
        return (item.find_queries[0].query_text,
                torch.stack([i.data for i in item.images]).sum().item())

    def make():
        return SeededSamples(make_video_dataset(
            synthetic_root, image_size=SIZE, frames_per_clip=3, stride_max=2,
            random_reverse=True, negative_ratio=0.5))

    first, second = make(), make()
    keys = [(i % len(first), 1000 + i) for i in range(12)]
    forward = {key: fingerprint(first[key]) for key in keys}
    for key in reversed(keys):  # another order, another copy, other global RNG state
        random.seed(key[1])
        torch.manual_seed(key[1])
        assert fingerprint(second[key]) == forward[key]
    phrases = {(key[0], p) for key, (p, _) in forward.items()}
    assert len(phrases) > len(first)  # some items were drawn as negatives


def test_only_truly_absent_phrases_are_negatives(dataset_copy):
    """A category spelling a phrase of the video (other id, other case/spacing) is not
    absent; a phrase no other video annotates is not offered."""
    layout = sorted((a["video_id"], a["category_id"]) for a in dataset_copy.load()["annotations"])
    assert layout == [(1, 3), (1, 4), (2, 1), (2, 4), (3, 2), (3, 3)]  # SMALL's objects

    def change(data):
        data["categories"].append({"id": 5, "name": "Green  Triangle"})  # spells category 3
        data["categories"].append({"id": 6, "name": "purple star"})  # annotates nothing
        for ann in data["annotations"]:
            if ann["video_id"] == 2 and ann["category_id"] == 1:
                ann["category_id"] = 5  # red square (1) now annotates nothing either

    dataset_copy.edit(change)
    dataset = make_video_dataset(dataset_copy.root, image_size=SIZE, frames_per_clip=T,
                                 negative_ratio=1.0)
    loader = dataset.coco
    # video 1: green triangle (3), yellow circle (4); video 2: "Green  Triangle" (5),
    # yellow circle (4); video 3: blue circle (2), green triangle (3)
    assert loader.absent_phrases(1) == [2]  # not 5: it spells green triangle
    assert loader.absent_phrases(2) == [2]  # not 3: it spells "Green  Triangle"
    assert loader.absent_phrases(3) == [4]  # not 5 either
    with pytest.raises(ValueError, match="not absent"):
        with loader.phrase_swapped(0, 5):
            pass
