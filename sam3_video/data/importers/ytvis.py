"""YouTube-VIS 2019/2021, OVIS, LV-VIS: one annotation JSON plus a folder of frames.

    ANNOTATIONS.json  {"videos": [{id, file_names, height, width, length}],
                       "annotations": [{id, video_id, category_id, iscrowd, bboxes?, areas,
                                        segmentations: [RLE | uncompressed RLE | polygons | null]}],
                       "categories": [{id, name}]}
    FRAMES_DIR/<file_names>

Ids and file names are kept. Every mask becomes a compressed RLE (pycocotools); an empty
one is null. Boxes are the source's unless it has none (LV-VIS) or --fix-boxes; then they
are the masks'. These sets are exhaustively labelled: no not_exhaustive field, except for a
category one of whose annotations was left out (--drop-invalid).
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

from ..masks import polygons_to_rle, rle_problem, to_rle
from ..problems import DatasetError, Problem
from .writer import DatasetWriter


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def import_ytvis(annotations: str | Path, frames_dir: str | Path,
                 writer: DatasetWriter) -> list[Problem]:
    """Import the annotation file's videos and masklets into `writer`; returns the problems
    of the records left out. Raises DatasetError when the file as a whole is unusable."""
    return _Import(Path(annotations), Path(frames_dir), writer).run()


class _Import:
    def __init__(self, ann_file: Path, frames_dir: Path, writer: DatasetWriter):
        self.ann_file, self.frames_dir, self.writer = ann_file, frames_dir, writer
        self.problems: list[Problem] = []

    def problem(self, record: str, message: str, file: Path | None = None) -> None:
        self.problems.append(Problem(str(file or self.ann_file), record, message))

    def run(self) -> list[Problem]:
        data = self.read()
        if not self.frames_dir.is_dir():
            raise DatasetError([Problem(str(self.frames_dir), "", "frames directory not found")])
        self.writer.set_categories(self.categories(data["categories"]))
        videos = self.videos(data["videos"])
        by_video = self.annotations_by_video(data["annotations"], videos)
        for vid, video in videos.items():
            self.video_tracks(video, by_video.get(vid, []))
        return self.problems

    def read(self) -> dict:
        try:
            data = json.loads(self.ann_file.read_text())
        except FileNotFoundError:
            raise DatasetError([Problem(str(self.ann_file), "", "annotation file not found")]) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DatasetError([Problem(str(self.ann_file), "", f"not valid JSON ({err})")]) from None
        if not isinstance(data, dict):
            raise DatasetError([Problem(str(self.ann_file), "", "expected a JSON object at the top")])
        missing = [Problem(str(self.ann_file), key, "missing or not a list")
                   for key in ("videos", "annotations", "categories")
                   if not isinstance(data.get(key), list)]
        if missing:
            raise DatasetError(missing)
        return data

    def categories(self, records: list) -> dict[int, str]:
        found = {}
        for i, rec in enumerate(records):
            where = f"categories[{i}]"
            if not isinstance(rec, dict) or not _is_int(rec.get("id")):
                self.problem(where, "must be an object with an integer id")
            elif not isinstance(rec.get("name"), str) or not rec["name"].strip():
                self.problem(f"{where}.name", "missing or not a non-empty string")
            elif rec["id"] in found:
                self.problem(f"{where}.id", f"duplicate category id {rec['id']}")
            else:
                found[rec["id"]] = rec["name"].strip()
        return found

    def videos(self, records: list) -> dict[int, dict]:
        """id -> native video record, for every video whose record and frames are usable."""
        usable, seen = {}, set()
        for i, rec in enumerate(records):
            where = f"videos[{i}]"
            if not isinstance(rec, dict) or not _is_int(rec.get("id")):
                self.problem(where, "must be an object with an integer id")
                continue
            where = f"videos[{i}] (id {rec['id']})"
            before = len(self.problems)
            if rec["id"] in seen:
                self.problem(f"{where}.id", "duplicate video id")
            seen.add(rec["id"])
            for key in ("width", "height"):
                if not _is_int(rec.get(key)) or rec[key] <= 0:
                    self.problem(f"{where}.{key}", "missing or not a positive integer")
            names = rec.get("file_names")
            if (not isinstance(names, list) or not names
                    or not all(isinstance(n, str) and n and not PurePosixPath(n).is_absolute()
                               and ".." not in PurePosixPath(n).parts for n in names)):
                self.problem(f"{where}.file_names", "must be a non-empty list of relative paths")
            elif "length" in rec and rec["length"] != len(names):
                self.problem(f"{where}.length", f"is {rec['length']} but file_names lists "
                                                f"{len(names)} frames")
            if len(self.problems) == before:
                self.check_frames(where, rec)
            if len(self.problems) == before:
                for name in rec["file_names"]:
                    self.writer.place_frame(self.frames_dir / name, name)
                usable[rec["id"]] = self.writer.video_record(
                    rec["id"], rec["file_names"], rec["width"], rec["height"])
        return usable

    def check_frames(self, where: str, rec: dict) -> None:
        for t, name in enumerate(rec["file_names"]):
            path = self.frames_dir / name
            try:
                with Image.open(path) as image:
                    size = image.size
            except FileNotFoundError:
                self.problem(f"{where}.file_names[{t}]", "frame file not found", path)
                continue
            except (UnidentifiedImageError, OSError) as err:
                self.problem(f"{where}.file_names[{t}]",
                             f"cannot be read as an image ({err.__class__.__name__})", path)
                continue
            if size != (rec["width"], rec["height"]):
                self.problem(f"{where}.file_names[{t}]", f"image is {size[0]}x{size[1]} but the "
                             f"video declares {rec['width']}x{rec['height']} (w x h)", path)

    def annotations_by_video(self, records: list, videos: dict[int, dict]) -> dict[int, list]:
        """video id -> [(where, record)] of annotations whose ids and references hold."""
        by_video, seen = defaultdict(list), set()
        for i, rec in enumerate(records):
            where = f"annotations[{i}]"
            if not isinstance(rec, dict) or not _is_int(rec.get("id")):
                self.problem(where, "must be an object with an integer id")
                continue
            where = f"annotations[{i}] (id {rec['id']})"
            if rec["id"] in seen:
                self.problem(f"{where}.id", "duplicate annotation id")
                continue
            seen.add(rec["id"])
            vid, cid = rec.get("video_id"), rec.get("category_id")
            if not _is_int(cid) or cid not in self.writer.categories:
                self.problem(f"{where}.category_id", f"{cid!r} is not the id of a category")
                continue
            if not _is_int(vid) or vid not in videos:
                self.problem(f"{where}.video_id", f"{vid!r} is not the id of a video in the "
                                                  "file (or that video was left out)")
                continue
            by_video[vid].append((where, rec))
        return by_video

    def video_tracks(self, video: dict, annotations: list[tuple[str, dict]]) -> None:
        """Convert and check one video's annotations; keep the video with the good ones."""
        tracks, wheres, dropped = [], [], set()
        for where, rec in annotations:
            track = self.track(where, video, rec)
            if track is None:
                dropped.add(rec["category_id"])
            else:
                tracks.append(track)
                wheres.append(where)
        bad = set()
        for place, message in self.writer.record_problems(video, tracks):
            if not place.startswith("track "):
                self.problem(f"video {video['id']} {place}", message)
                continue
            index, _, field = place[len("track "):].partition(".")
            if "does not match its mask" in message:
                message += " (--fix-boxes recomputes boxes from the masks)"
            self.problem(wheres[int(index)] + (f".{field}" if field else ""), message)
            bad.add(int(index))
        kept = [tr for k, tr in enumerate(tracks) if k not in bad]
        dropped |= {tracks[k]["category_id"] for k in bad}
        self.writer.add_video(video, kept, not_exhaustive_ids=dropped)

    def track(self, where: str, video: dict, rec: dict) -> dict | None:
        """The native record of one annotation, or None (and its problems) when a mask or
        list is unusable."""
        height, width, length = video["height"], video["width"], video["length"]
        segs, boxes = rec.get("segmentations"), rec.get("bboxes")
        if not isinstance(segs, list) or len(segs) != length:
            self.problem(f"{where}.segmentations", f"must be a list of {length} entries "
                                                   f"(one per frame of video {video['id']})")
            return None
        if boxes is not None and (not isinstance(boxes, list) or len(boxes) != length):
            self.problem(f"{where}.bboxes", f"must be a list of {length} entries or absent")
            return None
        masks, ok = [], True
        for t, seg in enumerate(segs):
            if seg is None:
                masks.append(None)
                continue
            reason = rle_problem(seg, height, width)
            if reason:
                self.problem(f"{where}.segmentations[{t}]", reason)
                ok = False
                continue
            masks.append(polygons_to_rle(seg, height, width) if isinstance(seg, list) else to_rle(seg))
        if not ok:
            return None
        iscrowd = rec.get("iscrowd", 0)
        return self.writer.track_record(video, rec["category_id"], masks, boxes=boxes,
                                        iscrowd=iscrowd, track_id=rec["id"])
