"""A small synthetic video dataset in the native format: coloured shapes moving over noise.

Every video holds two objects with different noun phrases: first a "target", then a
"distractor" (for tracker training) that the target occludes where they overlap. In every third video (video 0 included) the distractor crosses the
frame from outside to outside, so it is absent (null) in its first and last frames.
Deterministic for a seed: the same arguments write byte-identical files.

Two phrase sets: PHRASES (the default: the demo's and the tests' data) and NOVEL_PHRASES,
the same colours on other shapes under new phrases, a new distribution to fine-tune a model
trained on the first (`phrase_set="novel"`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from .native import ANNOTATION_FILE, IMAGE_DIR
from .masks import bbox, to_rle

# (noun phrase, shape, RGB colour)
PHRASES = (
    ("red square", "square", (220, 40, 40)),
    ("blue circle", "circle", (40, 70, 230)),
    ("green triangle", "triangle", (40, 190, 60)),
    ("yellow circle", "circle", (235, 215, 40)),
)
NOVEL_PHRASES = (  # the same colour words on new shapes: what a fine-tune must add
    ("red diamond", "diamond", (220, 40, 40)),
    ("blue cross", "cross", (40, 70, 230)),
    ("green ring", "ring", (40, 190, 60)),
    ("yellow bar", "bar", (235, 215, 40)),
)
PHRASE_SETS = {"default": PHRASES, "novel": NOVEL_PHRASES}


def _shape_mask(shape: str, cx: float, cy: float, size: float, height: int, width: int) -> np.ndarray:
    """Mask of a shape centred at (cx, cy) with side/diameter `size`; parts off-frame are cut."""
    yy, xx = np.mgrid[:height, :width]
    yy, xx = yy + 0.5, xx + 0.5  # pixel centres
    half = size / 2
    if shape == "square":
        inside = (np.abs(xx - cx) <= half) & (np.abs(yy - cy) <= half)
    elif shape == "circle":
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= half ** 2
    elif shape == "triangle":  # pointing up: inside the bottom edge and both slanted edges
        rel_y = (yy - (cy - half)) / size  # 0 at the apex, 1 at the base
        inside = (rel_y >= 0) & (rel_y <= 1) & (np.abs(xx - cx) <= rel_y * half)
    elif shape == "diamond":
        inside = np.abs(xx - cx) + np.abs(yy - cy) <= half
    elif shape == "cross":  # a plus sign with arms a third of the size wide
        arm = size / 6
        box = (np.abs(xx - cx) <= half) & (np.abs(yy - cy) <= half)
        inside = box & ((np.abs(xx - cx) <= arm) | (np.abs(yy - cy) <= arm))
    elif shape == "ring":
        r2 = (xx - cx) ** 2 + (yy - cy) ** 2
        inside = (r2 <= half ** 2) & (r2 >= (half * 0.55) ** 2)
    elif shape == "bar":  # a horizontal bar a third as tall as it is wide
        inside = (np.abs(xx - cx) <= half) & (np.abs(yy - cy) <= half / 3)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return inside


def _trajectory(rng: np.random.Generator, frames: int, height: int, width: int, size: float,
                crossing: bool) -> list[tuple[float, float]]:
    """Centre per frame. A crossing object starts fully left of the frame and ends fully right."""
    times = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    if crossing:
        cy = rng.uniform(size, height - size)
        return [(-size + t * (width + 2 * size), cy) for t in times]
    lo = np.array([size / 2 + 1, size / 2 + 1])
    hi = np.array([width - size / 2 - 1, height - size / 2 - 1])
    start, end = rng.uniform(lo, hi), rng.uniform(lo, hi)
    return [tuple(start + t * (end - start)) for t in times]


def write_synthetic(out_dir: str | Path, videos: int = 8, frames: int = 8, seed: int = 0,
                    height: int = 96, width: int = 128, phrase_set: str = "default") -> Path:
    """Write `videos` clips of `frames` frames to out_dir (annotations.json + JPEGImages/),
    their objects drawn from PHRASE_SETS[phrase_set]. Returns the annotation file's path."""
    if phrase_set not in PHRASE_SETS:
        raise ValueError(f"phrase_set: unknown set {phrase_set!r}; one of {sorted(PHRASE_SETS)}")
    phrases = PHRASE_SETS[phrase_set]
    if videos < 1 or frames < 1:
        raise ValueError("videos and frames must be at least 1")
    if height < 32 or width < 32:
        raise ValueError("height and width must be at least 32 pixels")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    categories = [{"id": i + 1, "name": name} for i, (name, _, _) in enumerate(phrases)]
    video_records, annotations = [], []
    size_lo, size_hi = min(height, width) * 0.2, min(height, width) * 0.35
    for v in range(videos):
        name = f"video_{v:03d}"
        (out_dir / IMAGE_DIR / name).mkdir(parents=True, exist_ok=True)
        target_cat, distractor_cat = rng.choice(len(phrases), size=2, replace=False)
        # Only clips of 3+ frames can show an object outside, inside and outside again.
        crossing = v % 3 == 0 and frames >= 3
        objects = []  # the target first: it is drawn on top of the distractor
        for cat, is_crossing in ((target_cat, False), (distractor_cat, crossing)):
            size = rng.uniform(size_lo, size_hi)
            path = _trajectory(rng, frames, height, width, size, is_crossing)
            objects.append((int(cat), size, path))
        tracks = [{"bboxes": [], "segmentations": [], "areas": []} for _ in objects]
        file_names = []
        for t in range(frames):
            noise = rng.normal(0.0, 18.0, (height, width, 3))
            image = np.clip(np.full((height, width, 3), 110.0) + noise, 0, 255)
            masks = [_shape_mask(phrases[cat][1], *path[t], size, height, width)
                     for cat, size, path in objects]
            for i, ((cat, _, _), track) in enumerate(zip(objects, tracks)):
                # Earlier objects lie on top: the mask is the part that stays visible.
                mask = masks[i] & ~np.logical_or.reduce([np.zeros_like(masks[i])] + masks[:i])
                image[mask] = phrases[cat][2]
                if mask.any():
                    rle = to_rle(mask)
                    track["bboxes"].append(bbox(rle))
                    track["segmentations"].append(rle)
                    track["areas"].append(int(mask.sum()))
                else:
                    for key in track:
                        track[key].append(None)
            file_name = f"{name}/{t:05d}.jpg"
            Image.fromarray(image.astype(np.uint8)).save(out_dir / IMAGE_DIR / file_name, quality=92)
            file_names.append(file_name)
        video_id = v + 1
        video_records.append({"id": video_id, "width": width, "height": height,
                              "length": frames, "file_names": file_names})
        for (cat, _, _), track in zip(objects, tracks):
            annotations.append({"id": len(annotations) + 1, "video_id": video_id,
                                 "category_id": cat + 1, "iscrowd": 0, **track})
    ann_file = out_dir / ANNOTATION_FILE
    ann_file.write_text(json.dumps(
        {"videos": video_records, "annotations": annotations, "categories": categories}))
    return ann_file
