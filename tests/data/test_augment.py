"""data.augment: one random resize + pad (+ mirror) per training clip, the same on every
frame; exact per (index, seed); off for evaluation and with enabled: false."""
from __future__ import annotations

import random

import pytest
import torch

from sam3_video.config import ConfigError, TrainConfig, parse_config
from sam3_video.data import (AugmentedClips, ClipAugment, collate, eval_clips, load_native,
                             make_video_dataset)
from sam3_video.data.augment import AugmentDatapoint, Geometry, side_lengths
from sam3_video.data.video_dataset import SquareResize
from sam3_video.sampler import SeededSamples

SIZE = 56  # a multiple of the ViT patch (14)
T = 4


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)


def _augment(**kw) -> ClipAugment:
    kw = {"min_scale": 0.5, "max_scale": 1.0, "size_step": 2, **kw}
    return ClipAugment(SIZE, **kw)


def _item(dataset, index, seed):
    dataset.rng.seed(seed)
    return dataset[index]


def _xyxy(obj) -> torch.Tensor:
    """A transformed object's box (normalised cx, cy, w, h) in pixels, x0 y0 x1 y1."""
    cx, cy, w, h = (obj.bbox.view(4) * SIZE).tolist()
    return torch.tensor([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _content_box(image: torch.Tensor) -> list[int]:
    """x0, y0, x1, y1 of the pixels that are not padding (normalised black, -1)."""
    ys, xs = torch.nonzero((image != -1).any(0), as_tuple=True)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def _frames(item) -> tuple:
    return tuple(o.frame_index for img in item.images for o in img.objects)


def _same_item(a, b) -> bool:
    if [q.query_text for q in a.find_queries] != [q.query_text for q in b.find_queries]:
        return False
    for x, y in zip(a.images, b.images, strict=True):
        if not torch.equal(x.data, y.data) or len(x.objects) != len(y.objects):
            return False
        for o, p in zip(x.objects, y.objects):
            if not (torch.equal(o.bbox, p.bbox) and torch.equal(o.segment, p.segment)
                    and o.frame_index == p.frame_index):
                return False
    return True


# -- the draw -------------------------------------------------------------------------

def test_side_lengths_are_upstreams_at_1008():
    # sam3 get_random_resize_scales(1008, min_size=480, rounded=False): 480..992 by 32
    assert side_lengths(1008, 480 / 1008, 1.0) == list(range(480, 993, 32))
    assert side_lengths(112, 480 / 1008, 1.0) == list(range(53, 110, 4))  # step scaled
    assert side_lengths(SIZE, 0.5, 0.5, 3) == [28]
    with pytest.raises(ValueError):
        side_lengths(SIZE, 0.8, 0.5)


def test_a_draw_fits_the_frame_and_depends_only_on_the_rng():
    augment = _augment(hflip=0.5)
    draws = [augment.draw(random.Random(seed)) for seed in range(200)]
    assert draws == [augment.draw(random.Random(seed)) for seed in range(200)]
    for g in draws:
        assert g.size in augment.sizes and g.image_size == SIZE
        left, top, right, bottom = g.padding
        assert min(left, top, right, bottom) >= 0
        assert left + g.size + right == top + g.size + bottom == SIZE
    assert len({g.size for g in draws}) > 5 and len({g.left for g in draws}) > 5
    assert 60 < sum(g.flip for g in draws) < 140
    assert not any(g.flip for g in (_augment().draw(random.Random(s)) for s in range(50)))


# -- detector clips (sam3 Datapoints) --------------------------------------------------

def test_every_frame_of_a_clip_gets_the_same_geometry(synthetic_root):
    """Boxes move by one (scale, offset) on every frame, the same as the padding shows;
    the frames themselves are those the unaugmented dataset picks for the same seed."""
    augment = _augment()
    plain = make_video_dataset(synthetic_root, image_size=SIZE, frames_per_clip=T,
                               stride_max=2, random_reverse=True)
    augmented = make_video_dataset(synthetic_root, image_size=SIZE, frames_per_clip=T,
                                   stride_max=2, random_reverse=True, augment=augment)
    geometries = set()
    for seed in range(12):
        index = seed % len(plain)
        base, item = _item(plain, index, seed), _item(augmented, index, seed)
        assert _frames(base) == _frames(item)  # augmentation draws after the frames
        fits, contents = set(), set()
        for b_img, a_img in zip(base.images, item.images, strict=True):
            assert a_img.data.shape == (3, SIZE, SIZE)
            contents.add(tuple(_content_box(a_img.data)))
            for b_obj, a_obj in zip(b_img.objects, a_img.objects, strict=True):
                b, a = _xyxy(b_obj), _xyxy(a_obj)
                scale = ((a[2:] - a[:2]) / (b[2:] - b[:2])).tolist()
                offset = (a[:2] - b[:2] * torch.tensor(scale)).tolist()
                fits.add(tuple(round(v, 3) for v in scale + offset))
        assert len(fits) == 1 and len(contents) == 1  # one geometry for the whole clip
        (sx, sy, ox, oy), = fits
        (x0, y0, x1, y1), = contents
        assert sx == sy and round(sx * SIZE) in augment.sizes
        assert abs(ox - x0) < 0.01 and abs(oy - y0) < 0.01  # boxes moved with the frame
        assert x1 - x0 == y1 - y0 == round(sx * SIZE)
        geometries.add((sx, ox, oy))
    assert len(geometries) > 3  # a new draw per clip


def test_boxes_stay_on_their_masks(synthetic_root):
    """The box target is the box of the transformed mask, within a pixel (squares and
    circles; a triangle's apex may thin out of a downscaled mask, as without augmentation)."""
    native = load_native(synthetic_root)
    dataset = make_video_dataset(synthetic_root, image_size=SIZE, frames_per_clip=T,
                                 augment=_augment(hflip=0.5))
    checked = 0
    for seed in range(24):
        index = seed % len(dataset)
        item = _item(dataset, index, seed)
        phrase = native.categories[dataset.coco.datapoints[index].category_id]
        if "triangle" in phrase:
            continue
        for img in item.images:
            for obj in img.objects:
                ys, xs = torch.nonzero(obj.segment, as_tuple=True)
                mask_box = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
                assert (_xyxy(obj) - mask_box).abs().max() <= 1.0, (seed, phrase)
                checked += 1
    assert checked > 40


def test_flip_mirrors_frames_boxes_and_masks(synthetic_root):
    plain = make_video_dataset(synthetic_root, image_size=SIZE, frames_per_clip=T)
    flipped = make_video_dataset(synthetic_root, image_size=SIZE, frames_per_clip=T,
                                 augment=_augment(min_scale=1.0, hflip=1.0))  # no scale
    for seed in range(4):
        index = seed % len(plain)
        base, item = _item(plain, index, seed), _item(flipped, index, seed)
        assert _frames(base) == _frames(item)
        for b_img, a_img in zip(base.images, item.images, strict=True):
            assert (a_img.data - b_img.data.flip(-1)).abs().max() < 0.02
            for b_obj, a_obj in zip(b_img.objects, a_img.objects, strict=True):
                cx, cy, w, h = b_obj.bbox.view(4).tolist()
                assert torch.allclose(a_obj.bbox.view(4), torch.tensor([1 - cx, cy, w, h]),
                                      atol=1e-6)
                # Mirroring before or after sam3's resize differs only where a resampled
                # edge pixel sits at exactly 0.5 coverage (rounded one way, not mirrored).
                mirrored = b_obj.segment.flip(-1).bool()
                mask = a_obj.segment.bool()
                assert (mask & mirrored).sum() >= 0.85 * (mask | mirrored).sum()
                a_box, m_box = _mask_box(mask), _mask_box(mirrored)
                assert max(abs(u - v) for u, v in zip(a_box, m_box)) <= 1


def test_same_index_and_seed_give_the_same_item(synthetic_root):
    """Exact resume: the augmentation draws from dataset.rng, which SeededSamples reseeds
    per (index, seed), whatever was loaded before and whatever the global RNG state."""
    def make():
        return SeededSamples(make_video_dataset(
            synthetic_root, image_size=SIZE, frames_per_clip=3, stride_max=2,
            random_reverse=True, negative_ratio=0.5, augment=_augment(hflip=0.5)))

    first, second = make(), make()
    keys = [(i % len(first), 500 + i) for i in range(10)]
    forward = {key: first[key] for key in keys}
    for key in reversed(keys):
        random.seed(key[1] + 1)
        torch.manual_seed(key[1] + 1)
        assert _same_item(second[key], forward[key]), key
    assert len({tuple(_content_box(i.images[0].data)) for i in forward.values()}) > 3
    collate(list(forward.values())[:2])  # still a batch sam3's collator takes


def test_negative_and_frame_draws_are_unchanged(synthetic_root):
    """The augmentation draws after negative_ratio's and the frames': those stay as before."""
    kw = dict(image_size=SIZE, frames_per_clip=3, stride_max=2, random_reverse=True,
              negative_ratio=0.5)
    plain = make_video_dataset(synthetic_root, **kw)
    augmented = make_video_dataset(synthetic_root, **kw, augment=_augment(hflip=0.5))
    for seed in range(16):
        index = seed % len(plain)
        a, b = _item(plain, index, seed), _item(augmented, index, seed)
        assert a.find_queries[0].query_text == b.find_queries[0].query_text
        assert _frames(a) == _frames(b)


def test_disabled_is_exactly_the_square_resize(synthetic_root, monkeypatch):
    from sam3_video.detector.task import DetectTask

    monkeypatch.setenv("DATA_ROOT", str(synthetic_root.parent))
    cfg = TrainConfig(data={"train": synthetic_root.name, "image_size": SIZE,
                            "frames_per_clip": T, "augment": {"enabled": False}},
                      max_steps=1)
    dataset = DetectTask(cfg).train_dataset()
    assert isinstance(dataset._transforms[0].transforms[1], SquareResize)
    today = make_video_dataset(synthetic_root, image_size=SIZE, frames_per_clip=T,
                               negative_ratio=0.3)
    for seed in range(6):
        index = seed % len(today)
        a, b = _item(dataset, index, seed), _item(today, index, seed)
        assert _same_item(a, b)
        assert dataset.rng.getstate() == today.rng.getstate()  # nothing extra drawn
    assert ClipAugment.from_config(SIZE, cfg.data.augment) is None


def test_training_augments_when_enabled_with_upstreams_values(synthetic_root, monkeypatch):
    from sam3_video.detector.task import DetectTask
    from sam3_video.tracker.task import TrackTask

    monkeypatch.setenv("DATA_ROOT", str(synthetic_root.parent))
    data = {"train": synthetic_root.name, "image_size": SIZE, "frames_per_clip": T,
            "augment": {"enabled": True}}
    cfg = TrainConfig(data=data, max_steps=1)
    assert cfg.data.augment.enabled and cfg.data.augment.hflip == 0
    transform = DetectTask(cfg).train_dataset()._transforms[0].transforms[1]
    assert isinstance(transform, AugmentDatapoint)
    assert transform.augment.sizes == side_lengths(SIZE, 480 / 1008, 1.0)
    tracker = TrackTask(TrainConfig(task="track", data=data, max_steps=1)).train_dataset()
    assert isinstance(tracker, AugmentedClips)
    off = TrainConfig(task="track", data={**data, "augment": {"enabled": False}}, max_steps=1)
    assert not isinstance(TrackTask(off).train_dataset(), AugmentedClips)


def test_evaluation_is_never_augmented(synthetic_root):
    kw = dict(image_size=SIZE, frames_per_clip=T, training=False)
    plain = make_video_dataset(synthetic_root, **kw)
    asked = make_video_dataset(synthetic_root, **kw, augment=_augment(hflip=1.0))
    assert isinstance(asked._transforms[0].transforms[1], SquareResize)
    for index in range(len(plain)):
        assert _same_item(_item(plain, index, index), _item(asked, index, index))
    for clip in eval_clips(synthetic_root, image_size=SIZE, frames_per_clip=T):
        assert all(bool((img.data != -1).any(0).all()) for img in clip.datapoint.images)


def test_semantic_targets_are_refused(synthetic_root):
    dataset = make_video_dataset(synthetic_root, image_size=SIZE, frames_per_clip=T)
    dataset._transforms = []
    datapoint = _item(dataset, 0, 0)
    datapoint.find_queries[0].semantic_target = torch.zeros(1, 1, dtype=torch.uint8)
    geometry = Geometry(flip=False, size=40, left=1, top=2, image_size=SIZE)
    with pytest.raises(ValueError, match="semantic"):
        ClipAugment.apply_to_datapoint(datapoint, geometry)
    with pytest.raises(TypeError, match="rng"):
        AugmentDatapoint(_augment())(datapoint)


# -- tracker clips (tensors) -----------------------------------------------------------

def _mask_box(mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_tracker_clips_get_one_geometry_and_keep_their_frames(synthetic_root):
    from sam3_video.tracker.clips import TrackClips

    base = SeededSamples(TrackClips(synthetic_root, SIZE, frames_per_clip=T, max_objects=2,
                                    stride_max=2, random_reverse=True))
    augmented = SeededSamples(AugmentedClips(
        TrackClips(synthetic_root, SIZE, frames_per_clip=T, max_objects=2, stride_max=2,
                   random_reverse=True), _augment(hflip=0.5)))
    sizes = set()
    for seed in range(10):
        key = (seed % len(base), 100 + seed)
        b, a = base[key], augmented[key]
        assert a.track_ids == b.track_ids and a.video_id == b.video_id
        assert a.images.shape == b.images.shape and a.masks.shape == b.masks.shape
        assert a.masks.dtype == torch.bool
        contents = {tuple(_content_box(image)) for image in a.images}
        assert len(contents) == 1  # the same placement on every frame
        (x0, y0, x1, y1), = contents
        sizes.add(x1 - x0)
        for t in range(T):
            for k in range(a.masks.shape[1]):
                box = _mask_box(a.masks[t, k])
                if box is not None:  # inside the placed square
                    assert x0 <= box[0] and box[2] <= x1 and y0 <= box[1] and box[3] <= y1
                    assert _mask_box(b.masks[t, k]) is not None
        again = augmented[key]
        assert torch.equal(again.images, a.images) and torch.equal(again.masks, a.masks)
    assert len(sizes) > 3


def test_tracker_flip_and_identity(synthetic_root):
    from sam3_video.tracker.clips import TrackClips

    clips = TrackClips(synthetic_root, SIZE, frames_per_clip=T)
    torch.manual_seed(0)
    clip = clips[0]
    same = Geometry(flip=False, size=SIZE, left=0, top=0, image_size=SIZE)
    images, masks = ClipAugment.apply_to_tensors(clip.images, clip.masks, same)
    assert torch.equal(images, clip.images) and torch.equal(masks, clip.masks)
    mirror = Geometry(flip=True, size=SIZE, left=0, top=0, image_size=SIZE)
    images, masks = ClipAugment.apply_to_tensors(clip.images, clip.masks, mirror)
    assert torch.equal(images, clip.images.flip(-1)) and torch.equal(masks, clip.masks.flip(-1))
    small = Geometry(flip=False, size=28, left=20, top=3, image_size=SIZE)
    images, masks = ClipAugment.apply_to_tensors(clip.images, clip.masks, small)
    assert (images[..., :3, :] == -1).all() and (images[..., :, :20] == -1).all()
    assert not masks[..., 31:, :].any() and not masks[..., :, 48:].any()
    for t in range(T):
        box, before = _mask_box(masks[t, 0]), _mask_box(clip.masks[t, 0])
        if before is not None and box is not None:
            expect = [20 + before[0] / 2, 3 + before[1] / 2, 20 + before[2] / 2, 3 + before[3] / 2]
            # half a pixel from halving odd edges, one from resampling the edge
            assert max(abs(u - v) for u, v in zip(box, expect)) <= 1.5


# -- config --------------------------------------------------------------------------

def _problems(augment: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config("train", {"data": {"train": "x", "augment": augment}, "max_steps": 1})
    return info.value.problems


@pytest.mark.parametrize("augment, field", [
    ({"min_scale": 0}, "data.augment.min_scale"),
    ({"min_scale": 1.5}, "data.augment.min_scale"),
    ({"max_scale": 1.01}, "data.augment.max_scale"),
    ({"max_scale": -1}, "data.augment.max_scale"),
    ({"min_scale": 0.8, "max_scale": 0.6}, "data.augment.min_scale"),
    ({"size_step": 0}, "data.augment.size_step"),
    ({"hflip": 1.5}, "data.augment.hflip"),
    ({"hflip": -0.1}, "data.augment.hflip"),
    ({"enabled": "sometimes"}, "data.augment.enabled"),
    ({"rotate": 10}, "data.augment.rotate"),
])
def test_config_errors_name_the_field(augment, field):
    lines = _problems(augment)
    assert len(lines) == 1 and lines[0].startswith(f"{field}:"), lines


def test_config_defaults():
    """On by default for the sam3 preset (upstream's recipe), off for tiny (its short
    random-init runs: the tracker's 500-step test learns memory only without it)."""
    cfg = parse_config("train", {"data": {"train": "x"}, "max_steps": 1})
    assert not cfg.data.augment.enabled  # tiny
    cfg = parse_config("train", {"model": {"preset": "sam3"}, "data": {"train": "x"}, "max_steps": 1})
    augment = cfg.data.augment
    assert (augment.enabled, augment.max_scale, augment.size_step, augment.hflip) == (True, 1.0, None, 0.0)
    assert parse_config("train", cfg.model_dump(mode="json")) == cfg  # a stored spec
    off = parse_config("train", {"model": {"preset": "sam3"}, "data": {"train": "x", "augment": {
        "enabled": False}}, "max_steps": 1})
    assert not off.data.augment.enabled  # the user's value wins
    assert augment.min_scale * 1008 == pytest.approx(480)
    cfg = parse_config("train", {"data": {"train": "x", "augment": {
        "enabled": True, "min_scale": 0.3, "max_scale": 0.9, "size_step": 8, "hflip": 0.5}}, "max_steps": 1})
    assert ClipAugment.from_config(1008, cfg.data.augment).sizes == list(range(302, 908, 8))
