"""sam3's VideoGroundingDataset over a native dataset, its collate function, and the
deterministic clip iteration the evaluator uses.

Randomness (for exact resume): VideoGroundingDataset draws everything from its own
`dataset.rng`, a `random.Random` (python's `random`, not numpy, not torch) that
`set_curr_epoch(epoch)` reseeds to 42 + epoch and that then ADVANCES with every item
loaded: per item, `rng.randint(stride_min, stride_max)` for the stride, `rng.randint` for
the first frame, then `rng.random() < 0.5` for time reversal only when random_reverse is
on. So an item's frames depend on how many items that dataset copy loaded before (and each
DataLoader worker has its own copy). To resume exactly, reseed `dataset.rng` per item from
(seed, epoch, position), as sam3_video.sampler.SeededSamples does, or save and restore
`dataset.rng.getstate()`. The plain transforms below draw no random numbers at all (sam3's
RandomResizeAPI would call the global `random.choice` even with one size).
With training=False nothing is sampled: every frame of the datapoint is loaded.

Augmentation (training only, `augment=` a ClipAugment, see sam3_video.data.augment): the
square resize becomes a random resize + pad to image_size (and optional mirror), one draw
per clip, taken from the same `dataset.rng` AFTER the negative and frame draws (so those
stay as they were); augment=None draws nothing and gives the plain square resize.

Negatives: with negative_ratio > 0 a training item first draws `rng.random() <
negative_ratio` and, if so, `rng.choice` of the phrases absent from its video (see
NativeGroundingLoader.absent_phrases); the clip then asks for that phrase and has no target
on any frame (presence target 0). Both draws come from the same per-item `rng`, so resume
stays exact; with negative_ratio 0 nothing extra is drawn.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from sam3.model.data_misc import BatchedDatapoint
from sam3.train.data.collator import collate_fn_api
from sam3.train.data.sam3_image_dataset import Datapoint
from sam3.train.data.sam3_video_dataset import VideoGroundingDataset
from sam3.train.transforms.basic_for_api import ComposeAPI, NormalizeAPI, ToTensorAPI, resize
from sam3.train.transforms.segmentation import DecodeRle

from .augment import AugmentDatapoint, ClipAugment
from .loader import DatapointRef, NativeGroundingLoader
from .native import ANNOTATION_FILE, IMAGE_DIR

# sam3's image normalisation (its predictors use the same mean/std)
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)
# No dataset-level caps: sam3 would silently swap a datapoint over these for another one.
_NO_LIMIT = 1_000_000


class SquareResize:
    """Resize every frame (and its boxes and masks) to size x size. No randomness."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, datapoint: Datapoint, **kwargs) -> Datapoint:
        for i in range(len(datapoint.images)):
            datapoint = resize(datapoint, i, self.size, square=True)
        return datapoint


def video_transforms(image_size: int, augment: ClipAugment | None = None) -> list:
    """RLE -> mask, square resize (or, with `augment`, one random resize + pad to
    image_size per clip), tensor, normalise; boxes end as normalised cxcywh."""
    if augment is not None and augment.image_size != image_size:
        raise ValueError(f"augment is for {augment.image_size} px frames, not {image_size}")
    return [ComposeAPI(transforms=[
        DecodeRle(),
        SquareResize(image_size) if augment is None else AugmentDatapoint(augment),
        ToTensorAPI(),
        NormalizeAPI(mean=list(IMAGE_MEAN), std=list(IMAGE_STD)),
    ])]


class NativeVideoDataset(VideoGroundingDataset):
    """sam3's VideoGroundingDataset without its silent retry: upstream catches OSError and
    ValueError (a missing frame, a clip too short) and returns the NEXT item instead, which
    would train or score the wrong clip. Here the error propagates, naming the file.

    In training, a `negative_ratio` fraction of items become negatives: the item's frames
    asked for a phrase absent from its video (module doc). Transforms get `rng=self.rng`
    (an augmenting one draws from it, after the negative and frame draws)."""

    negative_ratio: float = 0.0

    def negative_phrase(self, index: int) -> int | None:
        """The absent category item `index` asks for instead of its own, drawn from
        self.rng, or None (a positive). Draws nothing when negative_ratio is 0."""
        if not self.training or self.negative_ratio <= 0:
            return None
        if self.rng.random() >= self.negative_ratio:
            return None
        video_id = self.coco.datapoints[int(self.ids[index])].video_id
        absent = self.coco.absent_phrases(video_id)
        return self.rng.choice(absent) if absent else None

    def __getitem__(self, index: int) -> Datapoint:
        negative = self.negative_phrase(index)
        if negative is None:
            datapoint = self._load_datapoint(index)
        else:
            with self.coco.phrase_swapped(int(self.ids[index]), negative):
                datapoint = self._load_datapoint(index)
        for transform in self._transforms:
            datapoint = transform(datapoint, epoch=self.curr_epoch, rng=self.rng)
        return datapoint


def _grounding_dataset(root: Path, loader, *, image_size: int, frames_per_clip: int,
                       stride_min: int, stride_max: int, random_reverse: bool,
                       training: bool, augment: ClipAugment | None = None) -> NativeVideoDataset:
    return NativeVideoDataset(
        num_stages_sample=frames_per_clip, stage_stride_min=stride_min,
        stage_stride_max=stride_max, random_reverse_time_axis=random_reverse,
        img_folder=str(root / IMAGE_DIR), ann_file=str(root / ANNOTATION_FILE),
        transforms=video_transforms(image_size, augment), training=training,
        load_segmentation=True,
        coco_json_loader=loader, max_ann_per_img=_NO_LIMIT, multiplier=1,
        max_train_queries=_NO_LIMIT, max_val_queries=_NO_LIMIT,
        max_masklet_num_in_video=_NO_LIMIT,
    )


def make_video_dataset(root: str | Path, *, image_size: int, frames_per_clip: int,
                       stride_min: int = 1, stride_max: int = 1, random_reverse: bool = False,
                       training: bool = True, include_negatives: bool = False,
                       negative_ratio: float = 0.0,
                       augment: ClipAugment | None = None) -> NativeVideoDataset:
    """One item = one (video, noun phrase) pair: a Datapoint of frames_per_clip frames
    (training: a random window, see the module doc for its RNG; training=False: every frame).
    negative_ratio (training): the fraction of items that ask their frames for a phrase
    absent from the video instead (no targets); 0 keeps every item positive.
    include_negatives instead lists every absent pair as items of their own (eval_clips).
    augment (training only; ignored with training=False, which never augments): a
    ClipAugment for image_size, replacing the square resize; None: the square resize.

    Videos shorter than frames_per_clip are left out of training (sam3 would otherwise
    swap in the next item without a word). Raises DatasetError if the dataset is unusable.
    """
    if stride_max < stride_min or stride_min < 1:
        raise ValueError("need 1 <= stride_min <= stride_max")
    if not 0.0 <= negative_ratio <= 1.0:
        raise ValueError("need 0 <= negative_ratio <= 1")
    root = Path(root)
    loader = functools.partial(NativeGroundingLoader, include_negatives=include_negatives,
                               min_frames=frames_per_clip if training else 1)
    dataset = _grounding_dataset(root, loader, image_size=image_size,
                                 frames_per_clip=frames_per_clip, stride_min=stride_min,
                                 stride_max=stride_max, random_reverse=random_reverse,
                                 training=training, augment=augment if training else None)
    dataset.negative_ratio = negative_ratio
    return dataset


def collate(items: list[Datapoint]) -> BatchedDatapoint:
    """Batch datapoints with sam3's collator (segmentation masks included)."""
    return collate_fn_api(items, dict_key="batch", with_seg_masks=True)["batch"]


def move_to(batch: BatchedDatapoint, device: torch.device) -> BatchedDatapoint:
    """A collated batch on `device` (the batch itself on the CPU); sam3's batches implement .to()."""
    if device.type == "cpu":
        return batch
    from sam3.model.utils.misc import copy_data_to_device

    return copy_data_to_device(batch, device, non_blocking=True)


@dataclass
class EvalClip:
    """A window of one video for one noun phrase, ready for collate()."""
    video_id: int
    category_id: int
    noun_phrase: str
    frame_indices: list[int]     # the clip's frames, as indices into the whole video
    datapoint: Datapoint


def eval_clips(root: str | Path, *, image_size: int, frames_per_clip: int | None = None,
               include_negatives: bool = True) -> Iterator[EvalClip]:
    """Every (video, noun phrase) pair, cut into consecutive windows of frames_per_clip
    frames (the last window of a video may be shorter; None = the whole video), in a fixed
    order: videos in file order, phrases by category id, windows in time order. No random
    sampling. Negatives (phrases absent from a video) are included by default because
    phrase-level metrics need them."""
    root = Path(root)
    loader = functools.partial(NativeGroundingLoader, window=frames_per_clip,
                               include_negatives=include_negatives)
    dataset = _grounding_dataset(root, loader, image_size=image_size, frames_per_clip=1,
                                 stride_min=1, stride_max=1, random_reverse=False,
                                 training=False)
    refs: list[DatapointRef] = dataset.coco.datapoints
    native = dataset.coco.native
    for index, ref in enumerate(refs):
        yield EvalClip(video_id=ref.video_id, category_id=ref.category_id,
                       noun_phrase=native.categories[ref.category_id],
                       frame_indices=ref.frame_indices, datapoint=dataset[index])


__all__ = ["make_video_dataset", "NativeVideoDataset", "collate", "eval_clips", "EvalClip",
           "video_transforms", "SquareResize", "ClipAugment"]
