"""SA-V (Segment Anything Video): an .mp4 per video and its manual masklets.

    SRC/<video_id>.mp4
    SRC/<video_id>_manual.json  {"video_id", "video_frame_count", "video_height", "video_width",
                                 "masklet": [per annotated frame: [per object: RLE {size, counts}]],
                                 "masklet_id": [...], "masklet_num": N, ...}

SA-V annotates every 4th frame of the mp4 (0, 4, 8, ...). Only those frames are written,
as JPEGs; the video records their source indices (frame_indices) and the mp4's fps. An
empty RLE means the object is not visible there (null). Class-agnostic: every object gets
`phrase`, and every video lists it in not_exhaustive_category_ids. (*_auto.json, SA-V's
automatic masklets, are not imported.)
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..masks import rle_problem
from ..problems import DatasetError, Problem
from .video_frames import VideoDecodeError, extract_frames
from .writer import DatasetWriter

MANUAL_SUFFIX = "_manual.json"
FRAME_STRIDE = 4   # SA-V's annotation rate: 6 fps of 24 fps videos


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def import_sav(src: str | Path, writer: DatasetWriter, *, phrase: str = "object",
               frame_stride: int = FRAME_STRIDE) -> list[Problem]:
    """Import every <video>_manual.json (and its .mp4) under src into `writer`; returns the
    problems of the videos left out. Raises DatasetError when src holds none."""
    src = Path(src)
    if not src.is_dir():
        raise DatasetError([Problem(str(src), "", "source directory not found")])
    if not phrase.strip():
        raise DatasetError([Problem("--phrase", "", "must be a non-empty noun phrase")])
    manuals = sorted(src.glob(f"*{MANUAL_SUFFIX}"))
    if not manuals:
        raise DatasetError([Problem(str(src), "", f"holds no *{MANUAL_SUFFIX} files (SA-V layout)")])
    category_id = writer.phrase_id(phrase)
    problems: list[Problem] = []
    for video_id, manual in enumerate(manuals, start=1):
        name = manual.name[:-len(MANUAL_SUFFIX)]
        problems.extend(_import_video(name, manual, src / f"{name}.mp4", video_id,
                                      category_id, frame_stride, writer))
    return problems


def _read_manual(manual: Path, record: str) -> tuple[dict | None, list[Problem]]:
    """The parsed masklet file, checked up to the RLEs (which pycocotools would trust)."""
    def bad(field: str, message: str):
        return None, [Problem(str(manual), f"{record}{field}", message)]
    try:
        data = json.loads(manual.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return bad("", f"not valid JSON ({err})")
    if not isinstance(data, dict):
        return bad("", "expected a JSON object at the top")
    for key in ("video_height", "video_width"):
        if not _is_int(data.get(key)) or data[key] <= 0:
            return bad(f".{key}", "missing or not a positive integer")
    frames = data.get("masklet")
    if not isinstance(frames, list) or not frames or not all(isinstance(f, list) for f in frames):
        return bad(".masklet", "must be a non-empty list (one entry per annotated frame) of lists")
    count = data.get("masklet_num", len(frames[0]))
    if not _is_int(count) or count < 1:
        return bad(".masklet_num", "must be a positive integer")
    problems = []
    height, width = data["video_height"], data["video_width"]
    for k, objects in enumerate(frames):
        if len(objects) != count:
            problems.append(Problem(str(manual), f"{record}.masklet[{k}]",
                                    f"has {len(objects)} objects, masklet_num says {count}"))
            continue
        for j, rle in enumerate(objects):
            reason = None if rle is None else rle_problem(rle, height, width)   # None: absent
            if reason:
                problems.append(Problem(str(manual), f"{record}.masklet[{k}][{j}]", reason))
    return (None if problems else data), problems


def _import_video(name: str, manual: Path, mp4: Path, video_id: int, category_id: int,
                  stride: int, writer: DatasetWriter) -> list[Problem]:
    record = f"video {name!r}"
    data, problems = _read_manual(manual, record)
    if data is None:
        return problems
    if not mp4.is_file():
        return [Problem(str(mp4), record, "video file not found")]
    indices = [stride * k for k in range(len(data["masklet"]))]
    try:
        decoded = extract_frames(mp4, set(indices),
                                 lambda t: writer.frame_path(f"{name}/{t:05d}.jpg"))
    except VideoDecodeError as err:
        shutil.rmtree(writer.image_dir / name, ignore_errors=True)
        return [Problem(str(mp4), record, f"cannot be decoded ({err})")]

    def fail(message: str) -> list[Problem]:
        shutil.rmtree(writer.image_dir / name, ignore_errors=True)
        return [Problem(str(mp4), record, message)]
    if decoded.frame_count <= indices[-1]:
        return fail(f"has {decoded.frame_count} frames but {manual.name} annotates frame "
                    f"{indices[-1]} ({len(indices)} frames, every {stride}th)")
    if (decoded.width, decoded.height) != (data["video_width"], data["video_height"]):
        return fail(f"frames are {decoded.width}x{decoded.height} but {manual.name} says "
                    f"{data['video_width']}x{data['video_height']} (w x h)")
    video = writer.video_record(video_id, [f"{name}/{t:05d}.jpg" for t in indices],
                                decoded.width, decoded.height, fps=decoded.fps,
                                frame_indices=indices)
    tracks = [writer.track_record(video, category_id, [objects[j] for objects in data["masklet"]])
              for j in range(len(data["masklet"][0]))]
    ids = data.get("masklet_id")
    ids = ids if isinstance(ids, list) and len(ids) == len(tracks) else list(range(len(tracks)))
    bad, video_bad = set(), False
    for where, message in writer.record_problems(video, tracks):
        index, _, field = where.removeprefix("track ").partition(".")
        if where.startswith("track "):   # one object: left out, the rest of the video stays
            bad.add(int(index))
            where = f"masklet_id {ids[int(index)]}" + (f" {field}" if field else "")
        else:
            video_bad = True
        problems.append(Problem(str(manual), f"{record} {where}", message))
    kept = [track for j, track in enumerate(tracks) if j not in bad]
    if not kept or video_bad:
        shutil.rmtree(writer.image_dir / name, ignore_errors=True)
        return problems or [Problem(str(manual), record, "no object visible in any frame")]
    writer.add_video(video, kept, not_exhaustive=True)
    return problems
