"""validate_dataset: every problem of a native dataset, each naming its file and record.

The JSON checks live in native.check_structure; this adds the frame files. A frame is
opened with PIL, which reads only the header for the size: no JPEG is decoded.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .native import IMAGE_DIR, check_structure, read_annotation_json
from .problems import Problem

# Opening files is I/O bound (network volumes especially): a few threads overlap the waits.
_FRAME_THREADS = 8


def _frame_problem(root: Path, record: str, file_name: str, width: int, height: int) -> Problem | None:
    rel = f"{IMAGE_DIR}/{file_name}"
    path = root / IMAGE_DIR / file_name
    try:
        with Image.open(path) as image:
            size = image.size
    except FileNotFoundError:
        return Problem(rel, record, "frame file not found")
    except IsADirectoryError:
        return Problem(rel, record, "is a directory, not an image file")
    except (UnidentifiedImageError, OSError) as err:
        return Problem(rel, record, f"cannot be read as an image ({err.__class__.__name__})")
    if size != (width, height):
        return Problem(rel, record, f"image is {size[0]}x{size[1]} but the video declares "
                                    f"{width}x{height} (w x h)")
    return None


def _frames_to_check(videos) -> list[tuple[str, str, int, int]]:
    """(record, file_name, width, height) of every frame whose video record is well formed
    enough to say which file and size to expect."""
    frames = []
    if not isinstance(videos, list):
        return frames
    for i, video in enumerate(videos):
        if not isinstance(video, dict):
            continue
        width, height, names = video.get("width"), video.get("height"), video.get("file_names")
        if not (isinstance(width, int) and isinstance(height, int) and isinstance(names, list)):
            continue
        for t, name in enumerate(names):
            # check_structure already reports bad names (absolute, "..", not a string)
            if isinstance(name, str) and name and not name.startswith("/") and ".." not in name.split("/"):
                frames.append((f"videos[{i}].file_names[{t}]", name, width, height))
    return frames


def validate_dataset(root: str | Path) -> list[Problem]:
    """All problems of the dataset at root; an empty list means it is ready to use."""
    root = Path(root)
    data, problems = read_annotation_json(root)
    if problems:
        return problems
    problems = check_structure(data, check_masks=True)
    frames = _frames_to_check(data.get("videos") if isinstance(data, dict) else None)
    with ThreadPoolExecutor(_FRAME_THREADS) as pool:
        found = pool.map(lambda f: _frame_problem(root, f[0], f[1], f[2], f[3]), frames)
        problems.extend(p for p in found if p is not None)
    return problems
