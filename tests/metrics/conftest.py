"""Fixtures for the video metrics: a tiny native dataset whose masklets we know exactly."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sam3_video.data import masks

HEIGHT, WIDTH, FRAMES = 48, 64, 4
PHRASES = {1: "red square", 2: "blue disc", 3: "green bar"}
# (video id, category id, x0, y0) per object: video 1 has two red squares and a blue disc,
# video 2 a blue disc and a green bar, so "green bar" in video 1 and "red square" in
# video 2 are negative (video, phrase) pairs, which cgF1 needs.
OBJECTS = [(1, 1, 5, 5), (1, 1, 30, 20), (1, 2, 10, 25), (2, 2, 40, 5), (2, 3, 5, 30)]


def box_mask(x0: int, y0: int, t: int) -> np.ndarray:
    """A 12x10 box moving right 2 px and down 1 px per frame."""
    m = np.zeros((HEIGHT, WIDTH), bool)
    m[y0 + t:y0 + t + 10, x0 + 2 * t:x0 + 2 * t + 12] = True
    return m


def write_dataset(root, objects=OBJECTS) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    video_ids = sorted({o[0] for o in objects})
    videos = [{"id": v, "width": WIDTH, "height": HEIGHT, "length": FRAMES,
               "file_names": [f"v{v}/{t:05d}.jpg" for t in range(FRAMES)]} for v in video_ids]
    annotations = []
    for ann_id, (v, c, x0, y0) in enumerate(objects, start=1):
        segs = [masks.to_rle(box_mask(x0, y0, t)) for t in range(FRAMES)]
        annotations.append({"id": ann_id, "video_id": v, "category_id": c, "iscrowd": 0,
                            "segmentations": segs, "bboxes": [masks.bbox(s) for s in segs],
                            "areas": [masks.area(s) for s in segs]})
    data = {"videos": videos, "annotations": annotations,
            "categories": [{"id": i, "name": n} for i, n in PHRASES.items()]}
    (root / "annotations.json").write_text(json.dumps(data))
    return data


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_vis")
    write_dataset(root)
    return root


@pytest.fixture(scope="module")
def synthetic_dataset(tmp_path_factory):
    """The data package's synthetic clips (3 videos x 4 frames; some objects leave the frame)."""
    from sam3_video.data import write_synthetic
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic(root, videos=3, frames=4, seed=3)
    return root


@pytest.fixture(params=["tiny_dataset", "synthetic_dataset"])
def any_dataset(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A DATA_ROOT with training clips and held-out clips (different seeds)."""
    from sam3_video.data import write_synthetic
    root = tmp_path_factory.mktemp("data")
    write_synthetic(root / "synthetic", videos=4, frames=4, seed=0)
    write_synthetic(root / "synthetic-val", videos=2, frames=4, seed=1)
    return root


def run_program(program: str, config: dict, run_dir, data_root, timeout: float = 240,
                threads: int = 1):
    """python -m sam3_video.<program> as a real subprocess."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    run_dir = Path(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    config_file = run_dir.parent / f"{run_dir.name}.json"
    config_file.write_text(json.dumps(config))
    env = dict(os.environ, DATA_ROOT=str(data_root), RUNS_ROOT=str(run_dir.parent),
               OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", f"sam3_video.{program}", "--config",
                           str(config_file), "--run-dir", str(run_dir)],
                          env=env, capture_output=True, text=True, timeout=timeout)
