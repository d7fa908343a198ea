"""Importers: public video segmentation datasets -> the native format, then validated.

    davis.py         DAVIS 2017 / MOSE / YouTube-VOS: JPEG folders + palette PNG masks
    ytvis.py         YouTube-VIS 2019/2021, OVIS, LV-VIS: one JSON + a frames folder
    sav.py           SA-V: .mp4 + <video>_manual.json masklets (every 4th frame)
    writer.py        DatasetWriter: the native layout, ids, boxes, the per-record check
    video_frames.py  decode a video file with PyAV, write the wanted frames as JPEGs

    import_dataset(format, out, *sources, drop_invalid=, fix_boxes=, **options) -> ImportResult

A bad source record (unreadable PNG, mask of the wrong size, RLE that does not decode,
annotation of a missing video, mp4 shorter than its masklets) is a Problem naming the
source file and record. Without drop_invalid any such problem fails the import and nothing
is left in `out`; with it the bad records are left out and listed in `skipped`. The written
dataset is then validated; should that find a problem, `out` is kept for a look.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..problems import DatasetError, Problem
from ..validate import validate_dataset
from .davis import import_davis
from .sav import import_sav
from .writer import DatasetWriter
from .ytvis import import_ytvis

# format name -> importer(*sources, writer, **options) -> problems of the records left out
FORMATS: dict[str, Callable[..., list[Problem]]] = {
    "davis": import_davis,   # (src, writer, phrase=, phrases=, resolution=, split=)
    "ytvis": import_ytvis,   # (annotations_json, frames_dir, writer)
    "sav": import_sav,       # (src, writer, phrase=)
}


@dataclass
class ImportResult:
    format: str
    out: Path
    problems: list[Problem] = field(default_factory=list)  # why the import failed; [] = it worked
    skipped: list[Problem] = field(default_factory=list)   # records left out (drop_invalid)
    summary: dict = field(default_factory=dict)            # videos, frames, objects, phrases
    droppable: bool = False   # the problems are bad records, which drop_invalid would leave out

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary_line(self) -> str:
        s = self.summary
        line = (f"imported {self.format}: {s['videos']} videos, {s['frames']} frames, "
                f"{s['objects']} objects, {s['phrases']} phrases -> {self.out}")
        return line + (f" ({len(self.skipped)} problem(s) skipped)" if self.skipped else "")


def import_dataset(format: str, out: str | Path, *sources: str | Path, drop_invalid: bool = False,
                   fix_boxes: bool = False, **options) -> ImportResult:
    """Import `sources` in `format` into the new (or empty) directory `out`, then validate
    it. fix_boxes: boxes from the masks, never the source's. Raises ValueError for an
    unknown format and FileExistsError when out holds files."""
    if format not in FORMATS:
        raise ValueError(f"unknown dataset format {format!r} (known: {', '.join(FORMATS)})")
    result = ImportResult(format, Path(out))
    writer = DatasetWriter(out, fix_boxes=fix_boxes)
    unusable = False   # the source as a whole is unusable: no record to keep
    try:
        problems = FORMATS[format](*sources, writer, **options)
    except DatasetError as err:
        problems, unusable = err.dataset_problems, True
    except BaseException:
        writer.discard()
        raise
    if unusable or (problems and not drop_invalid):
        writer.discard()
        result.problems, result.droppable = problems, not unusable
        return result
    result.skipped = problems
    writer.finish()
    result.summary = writer.summary()
    # The writer checked every record as the validator does; this also opens every frame.
    result.problems = [Problem(f"{out}/{p.file}", p.record, p.message)
                       for p in validate_dataset(out)]
    return result


__all__ = ["FORMATS", "DatasetWriter", "ImportResult", "import_dataset", "import_davis",
           "import_sav", "import_ytvis"]
