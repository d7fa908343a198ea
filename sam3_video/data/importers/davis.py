"""DAVIS 2017 / MOSE / YouTube-VOS: JPEG frames + palette PNG masks, one folder per video.

    DAVIS layout  SRC/JPEGImages/<resolution>/<video>/*.jpg   SRC/Annotations/<resolution>/<video>/*.png
    flat layout   SRC/JPEGImages/<video>/*.jpg                SRC/Annotations/<video>/*.png  (MOSE, YouTube-VOS)
    SRC/ImageSets/2017/<split>.txt  one video name per line; used when a split is asked for

A PNG's pixel value is the object id: 0 is background and 255 "void" (ignored, not an
object). An object keeps its id through its video; one track per id.

Every JPEG becomes a frame. A frame without a PNG gets null for every object, which the
native format reads as "not visible": import folders whose every frame has its PNG
(YouTube-VOS's train/, which holds every 5th frame, not train_all_frames/).

These sets are class-agnostic: each object gets `phrase`, or its entry in a phrase map
{"<video>/<object id>" or "<object id>": phrase} (YouTube-VOS's meta.json serves as one).
Their labels are not exhaustive per phrase, so every video lists every category in
not_exhaustive_category_ids.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..masks import to_rle
from ..problems import DatasetError, Problem
from .writer import DatasetWriter

BACKGROUND, VOID = 0, 255
RESOLUTIONS = ("480p", "1080p", "Full-Resolution")   # DAVIS 2017's folder names
JPEG_SUFFIXES = (".jpg", ".jpeg")


def import_davis(src: str | Path, writer: DatasetWriter, *, phrase: str = "object",
                 phrases: str | Path | None = None, resolution: str = "480p",
                 split: str | None = None) -> list[Problem]:
    """Import every (listed) video into `writer`; returns the problems of the videos left
    out. Raises DatasetError when the source as a whole is unusable."""
    src = Path(src)
    images, annotations = _layout(src, resolution)
    phrase_map = load_phrase_map(Path(phrases)) if phrases else {}
    if not phrase.strip():
        raise DatasetError([Problem("--phrase", "", "must be a non-empty noun phrase")])
    names, problems = _video_names(src, images, split)
    for video_id, name in enumerate(names, start=1):
        video = _VideoImport(name, images / name, annotations / name, phrase, phrase_map)
        problems.extend(video.run(writer, video_id))
    return problems


def _layout(src: Path, resolution: str) -> tuple[Path, Path]:
    """(frames folder, masks folder) holding one folder per video."""
    if not src.is_dir():
        raise DatasetError([Problem(str(src), "", "source directory not found")])
    images, annotations = src / "JPEGImages", src / "Annotations"
    for folder in (images, annotations):
        if not folder.is_dir():
            raise DatasetError([Problem(str(folder), "", "folder not found (expected DAVIS, "
                                                         "MOSE or YouTube-VOS layout)")])
    if (images / resolution).is_dir():
        if not (annotations / resolution).is_dir():
            raise DatasetError([Problem(str(annotations / resolution), "", "folder not found")])
        return images / resolution, annotations / resolution
    others = [r for r in RESOLUTIONS if (images / r).is_dir()]
    if others:
        raise DatasetError([Problem(str(images), "", f"has no {resolution!r} folder "
                                                     f"(found: {', '.join(others)}); pass --resolution")])
    return images, annotations


def _video_names(src: Path, images: Path, split: str | None) -> tuple[list[str], list[Problem]]:
    found = sorted(p.name for p in images.iterdir() if p.is_dir())
    if split is None:
        if not found:
            raise DatasetError([Problem(str(images), "", "holds no video folders")])
        return found, []
    listing = src / "ImageSets" / "2017" / f"{split}.txt"
    if not listing.is_file():
        raise DatasetError([Problem(str(listing), "", f"split file not found (--split {split})")])
    wanted = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    if not wanted:
        raise DatasetError([Problem(str(listing), "", "lists no videos")])
    present = set(found)
    problems = [Problem(str(listing), f"line {i}", f"video {name!r} has no folder in {images}")
                for i, name in enumerate(wanted, start=1) if name not in present]
    return [n for n in wanted if n in present], problems


def load_phrase_map(path: Path) -> dict[str, str]:
    """{"<video>/<object id>" | "<object id>": phrase} from a JSON file, or from a
    YouTube-VOS meta.json ({"videos": {video: {"objects": {id: {"category"}}}}})."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError([Problem(str(path), "", "phrase map not found")]) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError([Problem(str(path), "", f"not valid JSON ({err})")]) from None
    if not isinstance(data, dict):
        raise DatasetError([Problem(str(path), "", "must be a JSON object {key: phrase}")])
    if isinstance(data.get("videos"), dict):
        data = _youtube_vos_meta(path, data["videos"])
    bad = [Problem(str(path), repr(k), "phrase must be a non-empty string")
           for k, v in data.items() if not isinstance(v, str) or not v.strip()]
    if bad:
        raise DatasetError(bad)
    return {k: v.strip() for k, v in data.items()}


def _youtube_vos_meta(path: Path, videos: dict) -> dict[str, str]:
    try:
        return {f"{video}/{oid}": obj["category"]
                for video, rec in videos.items() for oid, obj in rec["objects"].items()}
    except (KeyError, TypeError, AttributeError):
        raise DatasetError([Problem(str(path), "videos", "not a YouTube-VOS meta.json: "
                                    "expected {video: {objects: {id: {category}}}}")]) from None


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header; raises OSError/UnidentifiedImageError."""
    with Image.open(path) as image:
        return image.size


class _VideoImport:
    """One video folder: its frames, its PNGs, its tracks. Collects every problem."""

    def __init__(self, name: str, frames: Path, masks: Path, phrase: str, phrase_map: dict):
        self.name, self.frames_dir, self.masks_dir = name, frames, masks
        self.phrase, self.phrase_map = phrase, phrase_map
        self.problems: list[Problem] = []

    def problem(self, path: Path | str, message: str, record: str | None = None) -> None:
        self.problems.append(Problem(str(path), record or f"video {self.name!r}", message))

    def run(self, writer: DatasetWriter, video_id: int) -> list[Problem]:
        jpegs = sorted(p for p in self.frames_dir.iterdir()
                       if p.suffix.lower() in JPEG_SUFFIXES and p.is_file())
        if not jpegs:
            self.problem(self.frames_dir, "holds no JPEG frames")
            return self.problems
        if not self.masks_dir.is_dir():
            self.problem(self.masks_dir, "annotation folder not found")
            return self.problems
        pngs = {p.stem: p for p in self.masks_dir.iterdir() if p.suffix.lower() == ".png"}
        stems = {p.stem for p in jpegs}
        for stem in sorted(set(pngs) - stems):
            self.problem(pngs[stem], "mask has no frame of the same name")
        size = self.frame_size(jpegs)
        if size is None:
            return self.problems
        width, height = size
        frame_masks = [self.read_masks(pngs[p.stem], width, height) if p.stem in pngs else {}
                       for p in jpegs]
        if self.problems:
            return self.problems
        file_names = [f"{self.name}/{p.name}" for p in jpegs]
        video = writer.video_record(video_id, file_names, width, height)
        object_ids = sorted(set().union(*frame_masks))
        tracks = [writer.track_record(video, writer.phrase_id(self.phrase_of(oid)),
                                      [masks.get(oid) for masks in frame_masks])
                  for oid in object_ids]
        for where, message in writer.record_problems(video, tracks):
            self.problem(self.masks_dir, message, f"video {self.name!r} {where}")
        if not tracks:
            self.problem(self.masks_dir, "no object in any mask")
        if self.problems:
            return self.problems
        for path, file_name in zip(jpegs, file_names):
            writer.place_frame(path, file_name)
        writer.add_video(video, tracks, not_exhaustive=True)
        return self.problems

    def frame_size(self, jpegs: list[Path]) -> tuple[int, int] | None:
        sizes = {}
        for path in jpegs:
            try:
                sizes[path] = _image_size(path)
            except (UnidentifiedImageError, OSError) as err:
                self.problem(path, f"cannot be read as an image ({err.__class__.__name__})")
        if not sizes:
            return None
        first = sizes[jpegs[0]] if jpegs[0] in sizes else next(iter(sizes.values()))
        for path, size in sizes.items():
            if size != first:
                self.problem(path, f"frame is {size[0]}x{size[1]} but the video's first frame "
                                   f"is {first[0]}x{first[1]} (w x h)")
        return first

    def read_masks(self, path: Path, width: int, height: int) -> dict[int, dict]:
        """object id -> RLE of `png == id`, for every id in one PNG."""
        try:
            with Image.open(path) as image:
                if image.mode not in ("P", "L"):
                    self.problem(path, f"mask must be a palette (P) or greyscale (L) PNG of "
                                       f"object ids, got mode {image.mode}")
                    return {}
                if image.size != (width, height):
                    self.problem(path, f"mask is {image.width}x{image.height} but the frame is "
                                       f"{width}x{height} (w x h)")
                    return {}
                present = [oid for _, oid in image.getcolors(256)]   # a histogram, in C
                # column-major once: COCO RLE runs down columns, so no copy per object
                ids = np.asfortranarray(np.asarray(image))
        except (UnidentifiedImageError, OSError) as err:
            self.problem(path, f"cannot be read as a PNG ({err.__class__.__name__})")
            return {}
        return {oid: to_rle(ids == oid) for oid in sorted(present) if oid not in (BACKGROUND, VOID)}

    def phrase_of(self, object_id: int) -> str:
        return (self.phrase_map.get(f"{self.name}/{object_id}")
                or self.phrase_map.get(str(object_id)) or self.phrase)
