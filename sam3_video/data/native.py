"""The native dataset format: YouTube-VIS style annotations.json + JPEGImages/.

    root/annotations.json  {"videos": [{"id", "width", "height", "length", "file_names"}],
                            "annotations": [{"id", "video_id", "category_id", "iscrowd",
                                             "bboxes": [[x, y, w, h] absolute px | null per frame],
                                             "segmentations": [COCO RLE | null per frame],
                                             "areas": [...]}],
                            "categories": [{"id", "name"}]}   (name = the noun phrase)
    root/JPEGImages/<file_names>

One annotation is one object's track through its video (a "masklet"); a null entry means
the object is not visible in that frame.

Optional video fields (absent in older datasets, which stay valid and behave as before):
    "fps": frames per second of the source video (importers from .mp4 record it)
    "frame_indices": [int per file_name], the frame's index in the source video (SA-V
        annotates every 4th frame; only those are written)
    "not_exhaustive_category_ids": [category ids] whose objects may be only partly labelled
        in this video (class-agnostic DAVIS / SA-V). Such a phrase, absent from the video,
        is NOT a true negative there: training and evaluation never use it as one. Absent
        field = every phrase is exhaustively labelled (YouTube-VIS style).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath

from .problems import DatasetError, Problem
from .masks import area, bbox, polygons_to_rle, rle_problem

ANNOTATION_FILE = "annotations.json"
IMAGE_DIR = "JPEGImages"

BOX_TOLERANCE_PX = 1.0    # boxes may poke this far out of the frame (rounding)
BOX_MASK_MIN_IOU = 0.5    # a box and its mask "agree" above this IoU...
BOX_MASK_SLACK_PX = 2.0   # ...or when every edge is this close (tiny objects)


@dataclass(frozen=True)
class Video:
    id: int
    width: int
    height: int
    file_names: tuple[str, ...]
    fps: float | None = None
    not_exhaustive: frozenset[int] = frozenset()   # category ids; see the module doc

    @property
    def length(self) -> int:
        return len(self.file_names)


@dataclass(frozen=True)
class Track:
    """One object through its video; per-frame lists with None where it is absent."""
    id: int
    video_id: int
    category_id: int
    iscrowd: bool
    bboxes: tuple[list[float] | None, ...]      # absolute xywh pixels
    segmentations: tuple[dict | None, ...]      # COCO RLE

    def present_frames(self) -> list[int]:
        return [t for t, box in enumerate(self.bboxes) if box is not None]


@dataclass(frozen=True)
class NativeDataset:
    root: Path
    videos: dict[int, Video]          # by id, in file order
    categories: dict[int, str]        # id -> noun phrase, in file order
    tracks: tuple[Track, ...]

    @property
    def image_dir(self) -> Path:
        return self.root / IMAGE_DIR

    @property
    def annotation_file(self) -> Path:
        return self.root / ANNOTATION_FILE

    @cached_property
    def _tracks_by_video(self) -> dict[int, list[Track]]:
        by_video: dict[int, list[Track]] = {vid: [] for vid in self.videos}
        for track in self.tracks:
            by_video[track.video_id].append(track)
        return by_video

    def tracks_of(self, video_id: int, category_id: int | None = None) -> list[Track]:
        """The video's tracks in file order, optionally only those of one noun phrase."""
        return [tr for tr in self._tracks_by_video.get(video_id, [])
                if category_id is None or tr.category_id == category_id]

    def video_phrase_pairs(self, include_negatives: bool = False) -> list[tuple[int, int]]:
        """(video_id, category_id) pairs in a fixed order: videos in file order, then
        category id. Negatives are pairs whose phrase has no object in that video."""
        present = {(tr.video_id, tr.category_id) for tr in self.tracks}
        return [(vid, cid) for vid in self.videos for cid in sorted(self.categories)
                if (vid, cid) in present
                or (include_negatives and self.may_be_negative(vid, cid))]

    def may_be_negative(self, video_id: int, category_id: int) -> bool:
        """Whether an absent phrase is truly absent: its labels in the video are exhaustive."""
        return category_id not in self.videos[video_id].not_exhaustive


def read_annotation_json(root: Path) -> tuple[object, list[Problem]]:
    """The parsed annotations.json of a dataset root, or None and the reason."""
    path = root / ANNOTATION_FILE
    if not root.is_dir():
        return None, [Problem(str(root), "", "dataset directory not found")]
    if not path.is_file():
        return None, [Problem(ANNOTATION_FILE, "", "file not found")]
    try:
        return json.loads(path.read_text()), []
    except UnicodeDecodeError as err:
        return None, [Problem(ANNOTATION_FILE, "", f"not UTF-8 text ({err.reason})")]
    except json.JSONDecodeError as err:
        return None, [Problem(ANNOTATION_FILE, f"line {err.lineno} column {err.colno}",
                              f"not valid JSON: {err.msg}")]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _box_iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _edges(box: list[float]) -> tuple[float, float, float, float]:
    x, y, w, h = box
    return x, y, x + w, y + h


def _boxes_agree(box: list[float], mask_box: list[float]) -> bool:
    close = all(abs(p - q) <= BOX_MASK_SLACK_PX for p, q in zip(_edges(box), _edges(mask_box)))
    return close or _box_iou(box, mask_box) >= BOX_MASK_MIN_IOU


class _StructureCheck:
    """Every problem of a parsed annotations.json that needs no image file. Collects all of
    them: a later check that needs a valid earlier field just skips that record."""

    def __init__(self, check_masks: bool):
        self.check_masks = check_masks
        self.problems: list[Problem] = []

    def problem(self, record: str, message: str) -> None:
        self.problems.append(Problem(ANNOTATION_FILE, record, message))

    def run(self, data) -> list[Problem]:
        if not isinstance(data, dict):
            self.problem("", f"expected a JSON object at the top, got {type(data).__name__}")
            return self.problems
        sections = {}
        for key in ("videos", "annotations", "categories"):
            value = data.get(key)
            if value is None:
                self.problem(key, "missing")
            elif not isinstance(value, list):
                self.problem(key, f"must be a list, got {type(value).__name__}")
            sections[key] = value if isinstance(value, list) else []
        categories = self.categories(sections["categories"])
        videos = self.videos(sections["videos"])
        self.not_exhaustive(sections["videos"], categories)
        self.annotations(sections["annotations"], videos, categories)
        if "videos" in data and not sections["videos"]:
            self.problem("videos", "the dataset has no videos")
        if "annotations" in data and not sections["annotations"]:
            self.problem("annotations", "the dataset has no annotations")
        return self.problems

    def _unique_ids(self, name: str, records: list) -> dict[int, int]:
        """id -> position of every record with a valid, first-seen int id."""
        seen: dict[int, int] = {}
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                self.problem(f"{name}[{i}]", f"must be an object, got {type(rec).__name__}")
                continue
            rid = rec.get("id")
            if not _is_int(rid):
                self.problem(f"{name}[{i}].id", "missing or not an integer")
            elif rid in seen:
                self.problem(f"{name}[{i}].id", f"duplicate id {rid} (also {name}[{seen[rid]}])")
            else:
                seen[rid] = i
        return seen

    def categories(self, records: list) -> set[int]:
        ids = self._unique_ids("categories", records)
        for cid, i in ids.items():
            name = records[i].get("name")
            if not isinstance(name, str) or not name.strip():
                self.problem(f"categories[{i}].name", "missing or not a non-empty string (the noun phrase)")
        return set(ids)

    def videos(self, records: list) -> dict[int, dict]:
        """Videos usable for the annotation checks: id -> record."""
        usable = {}
        for vid, i in self._unique_ids("videos", records).items():
            rec, ok = records[i], True
            for key in ("width", "height"):
                if not _is_int(rec.get(key)) or rec[key] <= 0:
                    self.problem(f"videos[{i}].{key}", "missing or not a positive integer")
                    ok = False
            names = rec.get("file_names")
            if not isinstance(names, list) or not names:
                self.problem(f"videos[{i}].file_names", "missing or not a non-empty list")
                ok = False
            else:
                for t, name in enumerate(names):
                    if not isinstance(name, str) or not name:
                        self.problem(f"videos[{i}].file_names[{t}]", "not a non-empty string")
                        ok = False
                    elif PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
                        self.problem(f"videos[{i}].file_names[{t}]",
                                     f"{name!r} must be a relative path inside {IMAGE_DIR}/")
                        ok = False
                length = rec.get("length")
                if not _is_int(length):
                    self.problem(f"videos[{i}].length", "missing or not an integer")
                elif length != len(names):
                    self.problem(f"videos[{i}].length",
                                 f"is {length} but file_names lists {len(names)} frames")
                indices = rec.get("frame_indices")
                if indices is not None and (
                        not isinstance(indices, list) or len(indices) != len(names)
                        or not all(_is_int(t) and t >= 0 for t in indices)):
                    self.problem(f"videos[{i}].frame_indices",
                                 "must be a list of non-negative integers, one per file name")
            fps = rec.get("fps")
            if fps is not None and (not _is_number(fps) or fps <= 0):
                self.problem(f"videos[{i}].fps", "must be a positive number or absent")
            if ok:
                usable[vid] = rec
        return usable

    def not_exhaustive(self, records: list, categories: set[int]) -> None:
        for i, rec in enumerate(records):
            if not isinstance(rec, dict) or "not_exhaustive_category_ids" not in rec:
                continue
            ids = rec["not_exhaustive_category_ids"]
            if not isinstance(ids, list) or not all(_is_int(c) and c in categories for c in ids):
                self.problem(f"videos[{i}].not_exhaustive_category_ids",
                             "must be a list of category ids")

    def annotations(self, records: list, videos: dict[int, dict], categories: set[int]) -> None:
        for aid, i in self._unique_ids("annotations", records).items():
            rec, where = records[i], f"annotations[{i}]"
            vid, cid = rec.get("video_id"), rec.get("category_id")
            if not _is_int(cid) or cid not in categories:
                self.problem(f"{where}.category_id", f"{cid!r} is not the id of a category")
            if "iscrowd" in rec and rec["iscrowd"] not in (0, 1):
                self.problem(f"{where}.iscrowd", "must be 0 or 1")
            if not _is_int(vid) or vid not in videos:
                self.problem(f"{where}.video_id", f"{vid!r} is not the id of a (valid) video")
                continue
            video = videos[vid]
            length = len(video["file_names"])
            lists_ok = True
            for key in ("bboxes", "segmentations", "areas"):
                value = rec.get(key)
                if value is None and key == "areas":
                    continue
                if not isinstance(value, list):
                    self.problem(f"{where}.{key}", "missing or not a list (one entry per frame)")
                    lists_ok = False
                elif len(value) != length:
                    self.problem(f"{where}.{key}",
                                 f"has {len(value)} entries but video {vid} has {length} frames")
                    lists_ok = False
            if lists_ok:
                self.frames(where, rec, video["height"], video["width"])

    def frames(self, where: str, rec: dict, height: int, width: int) -> None:
        bboxes, segs, areas = rec["bboxes"], rec["segmentations"], rec.get("areas")
        if all(b is None for b in bboxes) and all(s is None for s in segs):
            self.problem(where, "the object is absent (null) in every frame")
        for t, (box, seg) in enumerate(zip(bboxes, segs)):
            if (box is None) != (seg is None):
                self.problem(f"{where}.bboxes[{t}]",
                             "box and segmentation must both be null (absent) or both be set")
                continue
            if areas is not None and areas[t] is not None and (not _is_number(areas[t]) or areas[t] < 0):
                self.problem(f"{where}.areas[{t}]", "must be a non-negative number or null")
            if box is None:
                continue
            box_ok = self.box(f"{where}.bboxes[{t}]", box, height, width)
            if not self.check_masks:
                continue
            reason = rle_problem(seg, height, width)
            if reason:
                self.problem(f"{where}.segmentations[{t}]", reason)
            elif box_ok:
                if isinstance(seg, list):  # COCO polygons: rasterised for the checks
                    seg = polygons_to_rle(seg, height, width)
                if area(seg) == 0:
                    self.problem(f"{where}.segmentations[{t}]", "mask is empty but the frame has a box")
                else:
                    mask_box = bbox(seg)
                    if not _boxes_agree(box, mask_box):
                        shown = ", ".join(f"{v:g}" for v in mask_box)
                        self.problem(f"{where}.bboxes[{t}]",
                                     f"box {box} does not match its mask's box [{shown}]")

    def box(self, record: str, box, height: int, width: int) -> bool:
        if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
            self.problem(record, "must be [x, y, w, h] (4 finite numbers, absolute pixels) or null")
            return False
        x, y, w, h = box
        if w < 0 or h < 0:
            self.problem(record, f"box {box} has a negative width or height")
            return False
        tol = BOX_TOLERANCE_PX
        if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
            self.problem(record, f"box {box} lies outside the {width}x{height} frame (w x h)")
            return False
        return True


def check_structure(data, *, check_masks: bool = True) -> list[Problem]:
    """Problems of a parsed annotations.json (no image file is opened).

    check_masks=False skips the RLE checks: fast, enough to build a NativeDataset safely."""
    return _StructureCheck(check_masks).run(data)


def load_native(root: str | Path, *, check_masks: bool = True) -> NativeDataset:
    """Parse a native dataset. Raises DatasetError listing every problem in the JSON.

    Masks are checked by default because pycocotools decodes a bad RLE past its buffer.
    Frame files are not opened here: validate_dataset() checks them too (the API runs it
    before it queues a job)."""
    root = Path(root)
    data, problems = read_annotation_json(root)
    if not problems:
        problems = check_structure(data, check_masks=check_masks)
    if problems:
        raise DatasetError(problems)
    videos = {v["id"]: Video(v["id"], v["width"], v["height"], tuple(v["file_names"]),
                             fps=v.get("fps"),
                             not_exhaustive=frozenset(v.get("not_exhaustive_category_ids", ())))
              for v in data["videos"]}
    categories = {c["id"]: c["name"].strip() for c in data["categories"]}
    def rle(seg, video_id):
        # polygons become RLEs here, so every later user of a Track sees RLE only
        if not isinstance(seg, list):
            return seg
        video = videos[video_id]
        return polygons_to_rle(seg, video.height, video.width)

    tracks = tuple(
        Track(id=a["id"], video_id=a["video_id"], category_id=a["category_id"],
              iscrowd=bool(a.get("iscrowd", 0)), bboxes=tuple(a["bboxes"]),
              segmentations=tuple(rle(s, a["video_id"]) for s in a["segmentations"]))
        for a in data["annotations"])
    return NativeDataset(root=root, videos=videos, categories=categories, tracks=tracks)
