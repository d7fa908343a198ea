"""Predict jobs: the program, its overlays, its config, its routes, end to end.

Helpers the test modules share (this room has no conftest of its own)."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from sam3_video.data import masks as rle_masks
from tests.support.configs import with_overrides

VIDEO = "synthetic-val/JPEGImages/video_000"  # a held-out synthetic demo video
PHRASES = ["red square", "blue circle"]


def predict_config(**overrides) -> dict:
    """A tiny random-init detect run. Random init scores every query about 0.35: threshold
    0 keeps what it finds, max_masklets a few of them, so masks cover part of each frame."""
    cfg = {"task": "detect", "model": {"preset": "tiny"},
           "data": {"video": VIDEO, "phrases": PHRASES}, "score_threshold": 0.0,
           "max_masklets": 3, "gpus": 0}
    return with_overrides(cfg, overrides)


def run_in_process(data_root: Path, cfg: dict, run_dir: Path) -> int:
    """python -m sam3_video.predict, called in this process (DATA_ROOT set for the call)."""
    from sam3_video import predict

    run_dir.parent.mkdir(parents=True, exist_ok=True)
    config = run_dir.parent / f"{run_dir.name}.json"
    config.write_text(json.dumps(cfg))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATA_ROOT", str(data_root))
        return predict.main(["--config", str(config), "--run-dir", str(run_dir)])


def write_test_mp4(path: Path, frames: list[Image.Image], fps: int) -> None:
    """An .mp4 written straight with PyAV (not through sam3_video.overlays)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def decode_mp4(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [np.asarray(f.to_image().convert("RGB")) for f in container.decode(video=0)]


def source_frames(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(f).convert("RGB")) for f in sorted(folder.glob("*.jpg"))]


def drawn_regions(predictions: dict, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(union of the masklets' masks on frame t, pixels far from anything drawn: outside
    every mask and every label box)."""
    from sam3_video.overlays import label_box
    from sam3_video.predict import masklet_label

    h, w = predictions["height"], predictions["width"]
    union, near = np.zeros((h, w), bool), np.zeros((h, w), bool)
    for m in predictions["masklets"]:
        mask = rle_masks.decode(m["segmentations"][t], h, w)
        union |= mask
        box = label_box((w, h), mask, masklet_label(m))
        if box is not None:
            near[box[1]:box[3], box[0]:box[2]] = True
    return union, ~(union | near)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """`mask` grown by `radius` pixels (a square neighbourhood)."""
    grown = np.pad(mask, radius)
    out = np.zeros_like(mask)
    h, w = mask.shape
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= grown[dy:dy + h, dx:dx + w]
    return out
