"""The `coco_json_loader` that feeds a native dataset to sam3's VideoGroundingDataset.

sam3 0.1.4 ships no loader with per-frame ground truth for video training. Its dataset
calls `coco_json_loader(annotation_file)` once and then asks the object for
getDatapointIds(), loadImagesFromDatapoint(i) and loadQueriesAndAnnotationsFromDatapoint(i).

One datapoint = one (video, noun phrase) pair, optionally cut into windows of frames.
Every frame of a datapoint gets exactly one find query (sam3 needs the same number of
queries per frame) with query_processing_order = image_id = the frame's index in the
datapoint; its object_ids_output lists that phrase's objects visible in that frame, so a
frame where the object is absent has a query with no target.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .native import NativeDataset, load_native
from .problems import DatasetError, Problem
from .masks import to_rle


@dataclass(frozen=True)
class DatapointRef:
    video_id: int
    category_id: int
    start: int   # first frame of the window in the video
    stop: int    # one past the last frame

    @property
    def frame_indices(self) -> list[int]:
        return list(range(self.start, self.stop))


class NativeGroundingLoader:
    def __init__(self, annotation_file: str | Path, *, window: int | None = None,
                 min_frames: int = 1, include_negatives: bool = False):
        """window: cut each video into consecutive windows of this many frames (the last
        may be shorter); None = the whole video. Videos shorter than min_frames are left out
        (training samples min_frames frames from a video). include_negatives adds pairs whose
        phrase is not in the video: queries with no target on every frame."""
        self.native: NativeDataset = load_native(Path(annotation_file).parent)
        self.datapoints: list[DatapointRef] = []
        for video_id, category_id in self.native.video_phrase_pairs(include_negatives):
            length = self.native.videos[video_id].length
            if length < min_frames:
                continue
            step = window or length
            for start in range(0, length, step):
                self.datapoints.append(
                    DatapointRef(video_id, category_id, start, min(start + step, length)))
        if not self.datapoints:
            raise DatasetError([Problem(
                "annotations.json", "videos",
                f"no video has the {min_frames} frames a clip needs")])
        self._absent: dict[int, list[int]] = {}

    def absent_phrases(self, video_id: int) -> list[int]:
        """Category ids that may be a negative phrase for the video, in id order: the
        phrase names objects in another video and no object of this one. Phrases are
        compared as text (trimmed, lower case), so a second category spelling a phrase of
        this video is not absent; crowd tracks count as present."""
        if video_id not in self._absent:
            def norm(phrase: str) -> str:
                return " ".join(phrase.lower().split())

            here = {norm(self.native.categories[tr.category_id])
                    for tr in self.native.tracks_of(video_id)}
            elsewhere = {tr.category_id for tr in self.native.tracks if tr.video_id != video_id}
            # a phrase only partly labelled here (non-exhaustive) is no sure negative
            self._absent[video_id] = [cid for cid in sorted(elsewhere)
                                      if norm(self.native.categories[cid]) not in here
                                      and self.native.may_be_negative(video_id, cid)]
        return self._absent[video_id]

    @contextlib.contextmanager
    def phrase_swapped(self, idx: int, category_id: int):
        """Within the block, datapoint `idx` loads as the same frames of the same video
        asked for phrase `category_id`, one of absent_phrases(video): a negative clip,
        queries with no target on every frame."""
        ref = self.datapoints[idx]
        if category_id not in self.absent_phrases(ref.video_id):
            raise ValueError(f"category {category_id} is not absent from video {ref.video_id}")
        self.datapoints[idx] = dataclasses.replace(ref, category_id=category_id)
        try:
            yield
        finally:
            self.datapoints[idx] = ref

    def getDatapointIds(self) -> list[int]:  # noqa: N802 (sam3's interface)
        return list(range(len(self.datapoints)))

    def loadImagesFromDatapoint(self, idx: int) -> list[dict]:  # noqa: N802
        ref = self.datapoints[idx]
        video = self.native.videos[ref.video_id]
        return [{"id": t, "file_name": video.file_names[frame],
                 "original_img_id": ref.video_id, "coco_img_id": ref.video_id}
                for t, frame in enumerate(ref.frame_indices)]

    def loadQueriesAndAnnotationsFromDatapoint(self, idx: int) -> tuple[list[dict], list[dict]]:  # noqa: N802
        ref = self.datapoints[idx]
        video = self.native.videos[ref.video_id]
        annotations: list[dict] = []
        targets_per_frame: list[list[int]] = [[] for _ in ref.frame_indices]
        for track in self.native.tracks_of(ref.video_id, ref.category_id):
            for t, frame in enumerate(ref.frame_indices):
                box, seg = track.bboxes[frame], track.segmentations[frame]
                if box is None:
                    continue
                x, y, w, h = box
                norm_box = [x / video.width, y / video.height, w / video.width, h / video.height]
                targets_per_frame[t].append(len(annotations))
                annotations.append({
                    "id": len(annotations), "image_id": t, "bbox": norm_box,
                    # sam3's own loaders give the area of the normalised box
                    "area": norm_box[2] * norm_box[3], "segmentation": to_rle(seg),
                    "object_id": track.id, "frame_index": frame, "is_crowd": track.iscrowd,
                })
        phrase = self.native.categories[ref.category_id]
        queries = [{
            "id": t, "original_cat_id": ref.category_id, "object_ids_output": targets,
            "query_text": phrase, "query_processing_order": t, "image_id": t,
            "ptr_x_query_id": None, "ptr_y_query_id": None,
            "input_box": None, "input_box_label": None, "input_points": None,
            # every object of the phrase is annotated: unmatched predictions are negatives
            "is_exhaustive": True,
        } for t, targets in enumerate(targets_per_frame)]
        return queries, annotations
