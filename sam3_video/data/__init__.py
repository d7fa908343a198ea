"""Video datasets: the native format, sam3's dataset over it, validation, synthetic data.

    native.py         the native format (annotations.json + JPEGImages/): parse and check
    loader.py         the native dataset as the loader sam3's VideoGroundingDataset reads
    video_dataset.py  sam3's dataset and collator over it, eval clips, batches to a device
    augment.py        training augmentation: one random resize/pad/mirror per clip
    validate.py       validate_dataset: every problem of a dataset, frame files included
    problems.py       Problem (file, record, message) and DatasetError
    synthetic.py      write_synthetic: small deterministic datasets of moving shapes
    masks.py          COCO RLE masks: the checks, encode/decode, areas, boxes, IoU
    importers/        DAVIS/MOSE/YouTube-VOS, YouTube-VIS/OVIS/LV-VIS and SA-V into the
                      native format (import_dataset), then validated
    __main__.py       python -m sam3_video.data synthetic|validate|import

    make_video_dataset(root, image_size=, frames_per_clip=, augment=, ...) -> sam3 VideoGroundingDataset
    ClipAugment(image_size, min_scale=, ...);  AugmentedClips(tracker clips, augment)
    collate(items) -> sam3 BatchedDatapoint;  move_to(batch, device)
    eval_clips(root, image_size=, frames_per_clip=None) -> deterministic EvalClip iterator
    load_native(root) -> NativeDataset (parsed annotations)
    validate_dataset(root) -> list[Problem]
    write_synthetic(out_dir, videos=, frames=, seed=) -> annotations.json path
"""
from .native import ANNOTATION_FILE, IMAGE_DIR, NativeDataset, Track, Video, load_native
from .problems import DatasetError, Problem
from .synthetic import write_synthetic
from .validate import validate_dataset

# These need torch and sam3 (seconds to import): loaded on first use, so the API and the
# CLI can validate a dataset without them.
_SAM3_NAMES = {"EvalClip", "NativeVideoDataset", "collate", "eval_clips", "make_video_dataset",
               "move_to"}
_AUGMENT_NAMES = {"ClipAugment", "AugmentedClips"}


def __getattr__(name: str):
    if name in _SAM3_NAMES:
        from . import video_dataset
        return getattr(video_dataset, name)
    if name in _AUGMENT_NAMES:
        from . import augment
        return getattr(augment, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ANNOTATION_FILE", "IMAGE_DIR", "NativeDataset", "Track", "Video", "load_native",
    "DatasetError", "Problem", "validate_dataset", "write_synthetic", *sorted(_SAM3_NAMES),
    *sorted(_AUGMENT_NAMES),
]
