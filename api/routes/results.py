"""A predict job's results: its masklets page by page; its overlay files, and an eval
job's (ranged downloads, as checkpoints are served)."""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

import jobstore
from api.deps import SettingsDep, VisibleJob
from api.errors import ApiError, responses
from api.routes.checkpoints import check_range
from api.schemas import MaskletOut, OverlayList, OverlayOut, PredictionsPage
from sam3_video.run_layout import OVERLAYS_DIR, PREDICTIONS_FILE, job_dir

router = APIRouter(prefix="/jobs/{job_id}", tags=["results"])

# What the predict program writes: a plain name, no path, no hidden (partial) file.
OVERLAY_TYPES = {".mp4": "video/mp4", ".png": "image/png"}
OVERLAY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.(mp4|png)$")


def _a(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


def _predict_job(job: jobstore.Job) -> None:
    if job.kind != "predict":
        raise ApiError(404, f"job {job.id} is {_a(job.kind)} job; predictions belong to "
                            "predict jobs")


@functools.lru_cache(maxsize=8)
def _read_predictions(path: str, mtime_ns: int, size: int) -> dict:
    """predictions.json, parsed once per file version (pages of one job read it again)."""
    return json.loads(Path(path).read_text())


@router.get("/predictions", response_model=PredictionsPage, responses=responses(401, 404, 422))
def get_predictions(job: VisibleJob, settings: SettingsDep,
                    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
                    limit: Annotated[int, Query(ge=1, le=500)] = 50) -> PredictionsPage:
    """The masklets [offset, offset + limit) of a predict job, highest score first within
    each phrase, with the video's frame count and size."""
    _predict_job(job)
    path = job_dir(settings.runs_root, job.id) / PREDICTIONS_FILE
    try:
        stat = path.stat()
        data = _read_predictions(str(path), stat.st_mtime_ns, stat.st_size)
    except FileNotFoundError:
        raise ApiError(404, f"job {job.id} has no predictions yet (state {job.state})") from None
    except ValueError:
        raise ApiError(404, f"job {job.id}: {PREDICTIONS_FILE} is not readable") from None
    masklets = data.get("masklets", [])
    return PredictionsPage(
        video=data["video"], frames=data["frames"], width=data.get("width"),
        height=data.get("height"), fps=data.get("fps"), total=len(masklets), offset=offset,
        limit=limit, masklets=[MaskletOut(**m) for m in masklets[offset:offset + limit]])


def _overlay_files(job: jobstore.Job, settings) -> dict[str, Path]:
    directory = job_dir(settings.runs_root, job.id) / OVERLAYS_DIR
    if not directory.is_dir():
        raise ApiError(404, f"job {job.id} has no overlays yet (state {job.state})")
    return {f.name: f for f in sorted(directory.iterdir())
            if OVERLAY_NAME.match(f.name) and f.is_file() and not f.is_symlink()}


@router.get("/overlays", response_model=OverlayList, responses=responses(401, 404, 422))
def list_overlays(job: VisibleJob, settings: SettingsDep) -> OverlayList:
    """The overlay files of a job: a predict job's video with its masks drawn (.mp4) and
    contact sheet (.png); an eval job's, or a detect training job's final evaluation,
    prediction next to ground truth (.png)."""
    return OverlayList(job_id=job.id, overlays=[
        OverlayOut(name=name, url=f"/jobs/{job.id}/overlays/{name}", size_bytes=f.stat().st_size)
        for name, f in _overlay_files(job, settings).items()])


@router.get("/overlays/{name}", response_class=FileResponse, responses={
    200: {"content": {"video/mp4": {}, "image/png": {}}, "description": "the whole file"},
    206: {"content": {"video/mp4": {}, "image/png": {}}, "description": "the requested range"},
    **responses(401, 404, 416, 422)})
def download_overlay(name: str, request: Request, job: VisibleJob, settings: SettingsDep):
    """One overlay file, by the name the listing gives. Supports Range/If-Range (a video
    player seeks with them)."""
    path = _overlay_files(job, settings).get(name) if OVERLAY_NAME.match(name) else None
    if path is None:
        raise ApiError(404, f"overlay {name[:100]!r} of job {job.id} not found")
    if request.headers.get("range"):
        check_range(request.headers["range"], path.stat().st_size)
    return FileResponse(path, media_type=OVERLAY_TYPES[path.suffix], filename=name,
                        content_disposition_type="inline")
