"""DatasetWriter: builds a native dataset (annotations.json + JPEGImages/) record by record.

Every importer hands it frames, videos and per-frame masks; it owns the native layout, the
ids, the boxes (from the masks unless the source's are kept) and the per-record check. That
check is the validator's own (native.check_structure on a one-video dataset), so a record
the writer accepts is one validate_dataset accepts too.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..masks import frame_record
from ..native import ANNOTATION_FILE, IMAGE_DIR, check_structure


class DatasetWriter:
    def __init__(self, out: str | Path, *, fix_boxes: bool = False):
        self.out = Path(out)
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise FileExistsError(f"{self.out}: output exists and is not an empty directory")
        self._made_out = not self.out.exists()
        self.fix_boxes = fix_boxes
        self.image_dir = self.out / IMAGE_DIR
        self.image_dir.mkdir(parents=True, exist_ok=True)
        self.videos: list[dict] = []
        self.annotations: list[dict] = []
        self.categories: dict[int, str] = {}
        self._by_phrase: dict[str, int] = {}
        self._last_track_id = 0

    # ------------------------------------------------------------------ categories

    def phrase_id(self, phrase: str) -> int:
        """The category id of a noun phrase, assigned on first use (1, 2, ...)."""
        phrase = phrase.strip()
        if phrase not in self._by_phrase:
            cid = max(self.categories, default=0) + 1
            self._by_phrase[phrase] = cid
            self.categories[cid] = phrase
        return self._by_phrase[phrase]

    def set_categories(self, categories: dict[int, str]) -> None:
        """Keep a source's own category ids (YouTube-VIS style sets)."""
        self.categories = dict(categories)
        self._by_phrase = {name: cid for cid, name in categories.items()}

    # ------------------------------------------------------------------ frames

    def place_frame(self, source: Path, file_name: str) -> None:
        """Put a source JPEG at JPEGImages/<file_name>: a hard link where the file system
        allows one (no copy of a large set), else a copy."""
        target = self.image_dir / file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)

    def frame_path(self, file_name: str) -> Path:
        """Where a frame the importer encodes itself goes (its folder exists)."""
        target = self.image_dir / file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    # ------------------------------------------------------------------ records

    @staticmethod
    def video_record(video_id: int, file_names: list[str], width: int, height: int, *,
                     fps: float | None = None, frame_indices: list[int] | None = None) -> dict:
        record = {"id": video_id, "width": width, "height": height,
                  "length": len(file_names), "file_names": list(file_names)}
        if fps is not None:
            record["fps"] = float(fps)
        if frame_indices is not None:
            record["frame_indices"] = [int(t) for t in frame_indices]
        return record

    def track_record(self, video: dict, category_id: int, masks: list, *,
                     boxes: list | None = None, iscrowd: int = 0, track_id: int | None = None) -> dict:
        """One object's annotation from per-frame masks (RLE, array or None). An empty mask
        is 'absent' (null). `boxes` (the source's, per frame) are kept unless fix_boxes or
        the frame has none; otherwise the box is the mask's."""
        bboxes, segmentations, areas = [], [], []
        for t, mask in enumerate(masks):
            rle, box, a = frame_record(mask)
            if rle is not None and boxes is not None and not self.fix_boxes and boxes[t] is not None:
                box = boxes[t]   # the validator checks its form and its fit to the mask
            bboxes.append(box)
            segmentations.append(rle)
            areas.append(a)
        if track_id is None:
            self._last_track_id += 1
            track_id = self._last_track_id
        return {"id": track_id, "video_id": video["id"], "category_id": category_id,
                "iscrowd": iscrowd, "bboxes": bboxes, "segmentations": segmentations,
                "areas": areas}

    def record_problems(self, video: dict, tracks: list[dict]) -> list[tuple[str, str]]:
        """(where, message) of what the validator would say about this video and its tracks;
        where is "video" or "track <index in tracks>" plus the field path."""
        data = {"videos": [video], "annotations": tracks,
                "categories": [{"id": cid, "name": n} for cid, n in self.categories.items()]}
        found = []
        for problem in check_structure(data, check_masks=True):
            record = problem.record
            if record.startswith("videos[0]"):
                found.append(("video" + record[len("videos[0]"):], problem.message))
            elif record.startswith("annotations["):
                index, _, rest = record[len("annotations["):].partition("]")
                found.append((f"track {index}{rest}", problem.message))
            elif record not in ("annotations",):   # "no annotations" is fine for one video
                found.append((record, problem.message))
        return found

    def add_video(self, video: dict, tracks: list[dict], *, not_exhaustive: bool = False,
                  not_exhaustive_ids: set[int] = frozenset()) -> None:
        """Keep a checked video and its tracks. not_exhaustive: every category (class-agnostic
        sets, filled in at write time); not_exhaustive_ids: these categories only (e.g. one
        of its objects was dropped)."""
        video = dict(video)
        if not_exhaustive:
            video["not_exhaustive_category_ids"] = "all"
        elif not_exhaustive_ids:
            video["not_exhaustive_category_ids"] = sorted(not_exhaustive_ids)
        self.videos.append(video)
        self.annotations.extend(tracks)

    # ------------------------------------------------------------------ output

    def finish(self) -> Path:
        """Write annotations.json; returns its path."""
        every = sorted(self.categories)
        for video in self.videos:
            if video.get("not_exhaustive_category_ids") == "all":
                video["not_exhaustive_category_ids"] = every
        data = {"videos": self.videos, "annotations": self.annotations,
                "categories": [{"id": cid, "name": n} for cid, n in self.categories.items()]}
        path = self.out / ANNOTATION_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)
        return path

    def discard(self) -> None:
        """Remove everything written: a failed import leaves no half dataset behind."""
        if self._made_out:
            shutil.rmtree(self.out, ignore_errors=True)
            return
        for entry in self.out.iterdir():   # it was empty: empty it again, keep the folder
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink()

    def summary(self) -> dict:
        return {"videos": len(self.videos),
                "frames": sum(v["length"] for v in self.videos),
                "objects": len(self.annotations),
                "phrases": len(self.categories)}
