"""Video datasets: the native format, sam3's dataset over it, validation, synthetic data.

    make_video_dataset(root, image_size=, frames_per_clip=, ...) -> sam3 VideoGroundingDataset
    collate(items) -> sam3 BatchedDatapoint
    eval_clips(root, image_size=, frames_per_clip=None) -> deterministic EvalClip iterator
    load_native(root) -> NativeDataset (parsed annotations)
    validate_dataset(root) -> list[Problem]
    write_synthetic(out_dir, videos=, frames=, seed=) -> annotations.json path
"""
from .native import ANNOTATION_FILE, IMAGE_DIR, NativeDataset, Track, Video, load_native
from .problems import DatasetError, Problem
from .synthetic import write_synthetic
from .video_dataset import EvalClip, NativeVideoDataset, collate, eval_clips, make_video_dataset

__all__ = [
    "ANNOTATION_FILE", "IMAGE_DIR", "NativeDataset", "Track", "Video", "load_native",
    "DatasetError", "Problem", "write_synthetic", "EvalClip", "NativeVideoDataset",
    "collate", "eval_clips", "make_video_dataset",
]
