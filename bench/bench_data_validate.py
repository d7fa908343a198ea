"""How fast validate_dataset is, against the naive way (decode every JPEG and every mask).

    .venv/bin/python bench/bench_data_validate.py [--videos 40] [--frames 30] [--height 240] [--width 320]

Both ways are timed side by side in one run on the same synthetic dataset; the ratio is
the figure to report (absolute times depend on the machine and its load).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_util

from sam3_video.data import load_native, validate_dataset, write_synthetic
from sam3_video.data.native import check_structure, read_annotation_json


def naive_full_decode(root: Path) -> int:
    """Open and fully decode every frame and every mask: what the validator avoids."""
    native = load_native(root, check_masks=False)
    decoded = 0
    for video in native.videos.values():
        for name in video.file_names:
            with Image.open(native.image_dir / name) as image:
                np.asarray(image.convert("RGB"))
                decoded += 1
    for track in native.tracks:
        for seg in track.segmentations:
            if seg is not None:
                mask_util.decode({"size": seg["size"], "counts": seg["counts"].encode()})
                decoded += 1
    return decoded


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_synthetic(root, videos=args.videos, frames=args.frames, seed=0,
                        height=args.height, width=args.width)
        assert validate_dataset(root) == []
        data, _ = read_annotation_json(root)
        frames = args.videos * args.frames
        t_validate = best_of(lambda: validate_dataset(root), args.repeats)
        t_json = best_of(lambda: check_structure(data, check_masks=True), args.repeats)
        t_naive = best_of(lambda: naive_full_decode(root), args.repeats)
    print(f"dataset: {args.videos} videos x {args.frames} frames of {args.width}x{args.height}, "
          f"{2 * frames} masks")
    print(f"validate_dataset (header reads, RLE runs checked with numpy):  {t_validate:.3f} s "
          f"({frames / t_validate:.0f} frames/s)")
    print(f"  of which JSON + mask checks alone:                          {t_json:.3f} s")
    print(f"naive full decode of every JPEG and mask (no checks at all):  {t_naive:.3f} s")
    print(f"ratio naive / validate_dataset: {t_naive / t_validate:.1f}x")


if __name__ == "__main__":
    main()
