"""Training-time augmentation: one random geometry per clip, applied to every frame.

What upstream sam3 does (facebookresearch/sam3, sam3/train/configs/roboflow_v100/
roboflow_v100_full_ft_100_images.yaml and odinw13/odinw_text_only_train.yaml, the public
fine-tuning configs; there is no public video training config, only video evaluation
configs, which square-resize to 1008 with consistent_transform: true and nothing random):

    RandomResizeAPI(sizes=get_random_resize_scales(1008, min_size=480, rounded=False),
                    square=True)          # a side from 480, 512, ..., 992 (32 px steps)
    PadToSizeAPI(size=1008)               # random left/top padding up to 1008 x 1008
    RandomizeInputBbox(box_noise_std=0.1, box_noise_max=20)
                                          # noise on the queries' INPUT (prompt) boxes

with consistent_transform false (images). A clip needs the same geometry on every frame
(masks, boxes and frames stay aligned over time), i.e. upstream's consistent_transform:
true, so here one Geometry is drawn per clip. Upstream's fine-tuning configs do not flip;
`hflip` (a probability, default 0) is an option here. Box noise is not done here: upstream's
noise only touches a query's input box, and our detect clips are text queries with no input
box (the tracker's box prompts are noised where they are made, sam3's sample_box_points with
the same 0.1 / 20 px, see sam3_video.tracker.prompts).

Randomness (exact resume): every draw comes from the `random.Random` passed in (the
detector's `dataset.rng`, after its negative and frame draws; the tracker's AugmentedClips
has its own `rng`), which sam3_video.sampler.SeededSamples reseeds per (index, seed). Not
from the global `random`: SeededSamples seeds that with the same seed as `dataset.rng`, so
the two streams are identical and upstream's classes (which call `random.choice`) would
draw a size that is a function of the item's negative / stride draws.
Draw order per clip: flip (only when hflip > 0), size, left pad, top pad.
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from sam3.train.data.sam3_image_dataset import Datapoint
from sam3.train.transforms.basic_for_api import hflip, pad, resize

# Upstream's values at its 1008 px model resolution (configs named in the module doc):
# get_random_resize_scales(size=1008, min_size=480, rounded=False) -> multiples of 32.
UPSTREAM_RESOLUTION = 1008
UPSTREAM_MIN_SIZE = 480
UPSTREAM_SIZE_STEP = 32
DEFAULT_MIN_SCALE = UPSTREAM_MIN_SIZE / UPSTREAM_RESOLUTION
DEFAULT_MAX_SCALE = 1.0
# Padding is black before normalisation; after sam3's (x - 0.5) / 0.5 that is -1.
NORMALISED_BLACK = -1.0


def side_lengths(image_size: int, min_scale: float, max_scale: float,
                 size_step: int | None = None) -> list[int]:
    """The square sides a clip may be resized to: from round(min_scale * image_size) up to
    round(max_scale * image_size) in steps of size_step (None: upstream's 32 px at 1008,
    scaled to image_size). At 1008 with the defaults: 480, 512, ..., 992, upstream's list."""
    if not 0 < min_scale <= max_scale <= 1:
        raise ValueError("need 0 < min_scale <= max_scale <= 1")
    if size_step is None:
        size_step = max(1, round(UPSTREAM_SIZE_STEP * image_size / UPSTREAM_RESOLUTION))
    if size_step < 1:
        raise ValueError("need size_step >= 1")
    low = max(1, round(min_scale * image_size))
    high = max(low, round(max_scale * image_size))
    return list(range(low, high + 1, size_step))


@dataclass(frozen=True)
class Geometry:
    """One clip's draw: mirror first, then resize to size x size, then place that square at
    (left, top) inside the image_size x image_size frame (the rest is padding)."""
    flip: bool
    size: int
    left: int
    top: int
    image_size: int

    @property
    def padding(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) in pixels."""
        rest = self.image_size - self.size
        return self.left, self.top, rest - self.left, rest - self.top


class ClipAugment:
    """Random scale, placement and (optionally) mirror, one draw per clip."""

    def __init__(self, image_size: int, *, min_scale: float = DEFAULT_MIN_SCALE,
                 max_scale: float = DEFAULT_MAX_SCALE, size_step: int | None = None,
                 hflip: float = 0.0):
        if not 0.0 <= hflip <= 1.0:
            raise ValueError("need 0 <= hflip <= 1")
        self.image_size = image_size
        self.sizes = side_lengths(image_size, min_scale, max_scale, size_step)
        self.hflip = hflip

    @classmethod
    def from_config(cls, image_size: int, config) -> "ClipAugment | None":
        """From a config.AugmentConfig (or anything with its fields); None when disabled."""
        if config is None or not config.enabled:
            return None
        return cls(image_size, min_scale=config.min_scale, max_scale=config.max_scale,
                   size_step=config.size_step, hflip=config.hflip)

    def __repr__(self) -> str:
        return (f"ClipAugment(image_size={self.image_size}, sizes={self.sizes[0]}.."
                f"{self.sizes[-1]} ({len(self.sizes)}), hflip={self.hflip})")

    def draw(self, rng: random.Random) -> Geometry:
        flip = self.hflip > 0 and rng.random() < self.hflip
        size = rng.choice(self.sizes)
        rest = self.image_size - size
        return Geometry(flip=flip, size=size, left=rng.randint(0, rest),
                        top=rng.randint(0, rest), image_size=self.image_size)

    # -- applying one geometry ---------------------------------------------------------

    @staticmethod
    def apply_to_datapoint(datapoint: Datapoint, geometry: Geometry) -> Datapoint:
        """Every frame of a sam3 Datapoint (PIL frames, xyxy pixel boxes, decoded masks),
        through sam3's own hflip / resize / pad, which move boxes, masks and any input
        boxes or points with the frame."""
        for query in datapoint.find_queries:
            # sam3's functions transform a query's semantic target once per FRAME; our
            # pipeline never makes one (masks travel per object), so refuse rather than
            # pad it T times.
            if query.semantic_target is not None:
                raise ValueError("clip augmentation does not support semantic targets")
        for i in range(len(datapoint.images)):
            if geometry.flip:
                datapoint = hflip(datapoint, i)
            datapoint = resize(datapoint, i, geometry.size, square=True)
            if geometry.size < geometry.image_size:
                datapoint = pad(datapoint, i, geometry.padding)
        return datapoint

    @staticmethod
    def apply_to_tensors(images: torch.Tensor, masks: torch.Tensor, geometry: Geometry,
                         fill: float = NORMALISED_BLACK) -> tuple[torch.Tensor, torch.Tensor]:
        """Square frames already at image_size: float images [T, C, S, S] (normalised;
        padding gets `fill`) and bool masks [T, K, S, S]. Resampled as sam3's resize does
        (bilinear with antialias; masks thresholded at 0.5)."""
        if geometry.flip:
            images, masks = images.flip(-1), masks.flip(-1)
        if geometry.size != images.shape[-1]:
            side = (geometry.size, geometry.size)
            images = F.interpolate(images, size=side, mode="bilinear", align_corners=False,
                                   antialias=True)
            lead = masks.shape[:-2]
            m = masks.reshape(-1, 1, *masks.shape[-2:]).float()
            if m.numel():
                m = F.interpolate(m, size=side, mode="bilinear", align_corners=False,
                                  antialias=True)
            else:
                m = m.new_zeros(m.shape[0], 1, *side)
            masks = m.reshape(*lead, *side) > 0.5
        left, top, right, bottom = geometry.padding
        if left or top or right or bottom:
            images = F.pad(images, (left, right, top, bottom), value=fill)
            masks = F.pad(masks, (left, right, top, bottom), value=False)
        return images, masks


class AugmentDatapoint:
    """A sam3-API transform (between DecodeRle and ToTensorAPI) that draws one Geometry
    from the `rng` keyword (the dataset's own, see the module doc) and applies it to every
    frame. Takes the place of the plain square resize."""

    def __init__(self, augment: ClipAugment):
        self.augment = augment

    def __call__(self, datapoint: Datapoint, *, rng: random.Random | None = None,
                 **kwargs) -> Datapoint:
        if rng is None:
            raise TypeError("AugmentDatapoint needs rng= (the dataset's per-item generator)")
        return self.augment.apply_to_datapoint(datapoint, self.augment.draw(rng))

    def __repr__(self) -> str:
        return f"AugmentDatapoint({self.augment!r})"


class AugmentedClips(Dataset):
    """Wraps a dataset of tracker clips (items with `.images` [T, 3, S, S] and `.masks`
    [T, K, S, S], e.g. sam3_video.tracker.clips.Clip): each item gets one Geometry drawn
    from `self.rng`, which SeededSamples reseeds per item. The wrapped dataset's own draws
    (torch's global generator) come first and are not changed."""

    def __init__(self, dataset: Dataset, augment: ClipAugment):
        self.dataset = dataset
        self.augment = augment
        self.rng = random.Random(0)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        clip = self.dataset[index]
        geometry = self.augment.draw(self.rng)
        images, masks = self.augment.apply_to_tensors(clip.images, clip.masks, geometry)
        return dataclasses.replace(clip, images=images, masks=masks)


__all__ = ["ClipAugment", "Geometry", "AugmentDatapoint", "AugmentedClips", "side_lengths",
           "DEFAULT_MIN_SCALE", "DEFAULT_MAX_SCALE"]
