"""How fast the importers turn public formats into a validated native dataset.

    .venv/bin/python bench/bench_import.py [--videos 100] [--frames 50] [--height 480] [--width 854]
                                           [--objects 3] [--formats davis,ytvis,sav]

Writes synthetic sources of the same moving objects in each format (DAVIS JPEG + palette
PNG folders, a YouTube-VIS JSON of RLEs over those JPEGs, SA-V .mp4 + masklet JSON
annotated every 4th frame), then times import_dataset (which ends by validating the
result) once per format. Source writing is not timed. frames/s counts source frames read:
SA-V decodes every mp4 frame and writes a quarter of them.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

from sam3_video.data import masks
from sam3_video.data.importers import import_dataset


def object_ids(t: int, height: int, width: int, objects: int) -> np.ndarray:
    """Label image of frame t: `objects` boxes drifting right, ids 1..objects."""
    ids = np.zeros((height, width), np.uint8)
    side = min(height, width) // 5
    for k in range(objects):
        x = (k * width // max(objects, 1) + 7 * t) % (width - side)
        y = (k * side // 2 + 3 * t) % (height - side)
        ids[y:y + side, x:x + side] = k + 1
    return ids


def frame_pixels(ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    image = rng.integers(60, 120, (*ids.shape, 3), dtype=np.uint8)
    image[ids > 0] = (ids[ids > 0, None] * 60 % 256).astype(np.uint8)
    return image


def write_sources(root: Path, args) -> None:
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, 768).tolist()
    ytvis = {"videos": [], "annotations": [], "categories": [{"id": 1, "name": "object"}]}
    (root / "sav").mkdir(parents=True)
    for v in range(args.videos):
        name = f"video_{v:04d}"
        jpeg_dir = root / "davis/JPEGImages/480p" / name
        png_dir = root / "davis/Annotations/480p" / name
        jpeg_dir.mkdir(parents=True)
        png_dir.mkdir(parents=True)
        labels = [object_ids(t + v, args.height, args.width, args.objects) for t in range(args.frames)]
        with av.open(str(root / "sav" / f"{name}.mp4"), "w") as mp4:
            stream = mp4.add_stream("mpeg4", rate=24)
            stream.width, stream.height, stream.pix_fmt = args.width, args.height, "yuv420p"
            for t, ids in enumerate(labels):
                pixels = frame_pixels(ids, rng)
                Image.fromarray(pixels).save(jpeg_dir / f"{t:05d}.jpg", quality=90)
                png = Image.fromarray(ids)
                png.putpalette(palette)
                png.save(png_dir / f"{t:05d}.png")
                for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                    mp4.mux(packet)
            for packet in stream.encode():
                mp4.mux(packet)
        rles = [[masks.to_rle(ids == k + 1) for k in range(args.objects)] for ids in labels]
        (root / "sav" / f"{name}_manual.json").write_text(json.dumps({
            "video_id": name, "video_frame_count": args.frames, "video_height": args.height,
            "video_width": args.width, "masklet": rles[::4], "masklet_num": args.objects,
            "masklet_id": list(range(args.objects))}))
        ytvis["videos"].append({"id": v + 1, "width": args.width, "height": args.height,
                                "length": args.frames,
                                "file_names": [f"{name}/{t:05d}.jpg" for t in range(args.frames)]})
        for k in range(args.objects):
            segs = [frame[k] for frame in rles]
            ytvis["annotations"].append({
                "id": len(ytvis["annotations"]) + 1, "video_id": v + 1, "category_id": 1,
                "iscrowd": 0, "segmentations": segs, "bboxes": [masks.bbox(s) for s in segs],
                "areas": [masks.area(s) for s in segs]})
    (root / "ytvis.json").write_text(json.dumps(ytvis))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--formats", default="davis,ytvis,sav")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_sources(root, args)
        print(f"sources: {args.videos} videos x {args.frames} frames of {args.width}x{args.height}, "
              f"{args.objects} objects (written in {time.perf_counter() - start:.1f} s, not timed)")
        sources = {"davis": (root / "davis",), "ytvis": (root / "ytvis.json", root / "davis/JPEGImages/480p"),
                   "sav": (root / "sav",)}
        print(f"{'format':<8}{'seconds':>10}{'frames/s':>10}{'written':>9}")
        for fmt in args.formats.split(","):
            start = time.perf_counter()
            result = import_dataset(fmt, root / f"out-{fmt}", *sources[fmt])
            seconds = time.perf_counter() - start
            assert result.ok, result.problems[:5]
            source_frames = args.videos * args.frames
            print(f"{fmt:<8}{seconds:>10.2f}{source_frames / seconds:>10.0f}"
                  f"{result.summary['frames']:>9}")


if __name__ == "__main__":
    main()
