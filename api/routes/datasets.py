"""Datasets: upload (PUT, a streamed tar/zip archive), list, inspect, delete, preview.

A caller sees their own uploads (DATA_ROOT/uploads/<user id>/<name>) and the shared
datasets (top-level folders of DATA_ROOT holding annotations.json, placed by an admin).
Another user's upload is indistinguishable from none. Validation runs in the background
(api.datasets): a record says validating, valid or invalid for the current version."""
from __future__ import annotations

import io
from pathlib import Path

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.auth import Caller
from api.datasets import dataset_registry
from api.deps import CurrentUser, SettingsDep
from api.errors import ApiError, responses
from api.schemas import DatasetList, DatasetOut
from api.uploads import (NAME, NAME_RULE, UPLOADS, Limits, UploadRefused, receive_archive,
                         remove, take_upload, user_dir)
from jobstore.settings import Settings
from sam3_video.data import ANNOTATION_FILE, DatasetError, load_native

router = APIRouter(prefix="/datasets", tags=["datasets"])
MAX_PROBLEMS = 20
PREVIEW_FRAMES = 16


def _shared_dir(settings: Settings, name: str) -> Path | None:
    path = settings.data_root / name
    if name != UPLOADS and NAME.match(name) and (path / ANNOTATION_FILE).is_file():
        return path
    return None


def _find(settings: Settings, caller: Caller, name: str) -> tuple[Path, str]:
    """(folder, owner) of the caller's upload or the shared dataset named `name`, or 404."""
    if NAME.match(name):
        own = user_dir(settings.data_root, caller.id) / name
        if own.is_dir():
            return own, caller.name
        shared = _shared_dir(settings, name)
        if shared is not None:
            return shared, "shared"
    raise ApiError(404, f"dataset {name[:100]!r} not found")


def _record(settings: Settings, name: str, owner: str, folder: Path) -> DatasetOut:
    """The dataset's record; starts its validation if this version has none yet."""
    registry = dataset_registry(settings)
    root = folder.resolve()
    out = DatasetOut(name=name, owner=owner, state="validating", version=None,
                     path=folder.relative_to(settings.data_root).as_posix())
    try:
        version = registry.version(root)
    except OSError as err:
        return out.model_copy(update={"state": "invalid", "problem_count": 1, "problems": [
            f"{ANNOTATION_FILE}: cannot be read ({err.strerror})"]})
    found = registry.cached(root, version)
    if found is None:
        registry.start(root, version)
        return out.model_copy(update={"version": version})
    return out.model_copy(update={
        "version": version, "state": "valid" if found.valid else "invalid",
        "problems": found.problems[:MAX_PROBLEMS], "problem_count": found.problem_count,
        **(found.counts or {})})


@router.get("", response_model=DatasetList, responses=responses(401))
def list_datasets(settings: SettingsDep, caller: CurrentUser) -> DatasetList:
    """The caller's uploads, then the shared datasets, each by name."""
    items = []
    own = user_dir(settings.data_root, caller.id)
    if own.is_dir():
        items += [_record(settings, d.name, caller.name, d)
                  for d in sorted(own.iterdir()) if d.is_dir() and NAME.match(d.name)]
    if settings.data_root.is_dir():
        items += [_record(settings, d.name, "shared", d) for d in sorted(settings.data_root.iterdir())
                  if _shared_dir(settings, d.name) is not None]
    return DatasetList(items=items)


@router.get("/{name}", response_model=DatasetOut, responses=responses(401, 404))
def get_dataset(name: str, settings: SettingsDep, caller: CurrentUser) -> DatasetOut:
    folder, owner = _find(settings, caller, name)
    return _record(settings, name, owner, folder)


@router.put("/{name}", status_code=202, response_model=DatasetOut, responses={
    **responses(401, 409, 413, 422),
    202: {"description": "stored; its validation has started (poll GET /datasets/{name})"}},
    openapi_extra={"requestBody": {"required": True, "description": "a tar (optionally "
                   "gzip/bz2/xz) or zip archive of a native dataset: annotations.json + "
                   "JPEGImages/ at its root or inside one top-level folder",
                   "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                       "format": "binary"}}}}})
async def upload_dataset(name: str, request: Request, settings: SettingsDep, caller: CurrentUser,
                         replace: bool = Query(False, description="replace an upload of this name")
                         ) -> DatasetOut:
    """Stream the archive to disk (SAM3V_UPLOAD_MAX_BYTES), extract it safely (no links,
    no paths outside, SAM3V_UPLOAD_MAX_FILES / _EXTRACTED_BYTES), move it into place."""
    if not NAME.match(name):
        raise ApiError(422, f"name: {name[:100]!r} is not a dataset name ({NAME_RULE})",
                       [f"name: must be {NAME_RULE}"])
    if _shared_dir(settings, name) is not None:
        raise ApiError(409, f"name: {name!r} is a shared dataset's name; choose another")
    dest = user_dir(settings.data_root, caller.id) / name
    if dest.exists() and not replace:  # before reading a byte of the body
        raise ApiError(409, f"dataset {name!r} exists; PUT with ?replace=true to replace it")
    length = request.headers.get("content-length", "")
    if length.isdigit() and (len(length) > 18 or int(length) > settings.upload_max_bytes):
        raise ApiError(413, f"body: archive larger than {settings.upload_max_bytes} bytes "
                            "(SAM3V_UPLOAD_MAX_BYTES)")
    limits = Limits(settings.upload_max_bytes, settings.upload_max_extracted_bytes,
                    settings.upload_max_files)
    try:
        archive = await receive_archive(request.stream(), settings.data_root, limits.max_bytes)
        try:
            await run_in_threadpool(take_upload, archive, dest, replace, settings.data_root, limits)
        finally:
            archive.unlink(missing_ok=True)
    except UploadRefused as err:
        raise ApiError(err.status, err.message, [err.message]) from None
    return await run_in_threadpool(_record, settings, name, caller.name, dest)


@router.delete("/{name}", status_code=204, response_class=Response,
               responses=responses(401, 403, 404))
def delete_dataset(name: str, settings: SettingsDep, caller: CurrentUser) -> Response:
    """Delete one of the caller's uploads. Shared datasets are managed on the server."""
    folder, owner = _find(settings, caller, name)
    if owner == "shared":
        raise ApiError(403, f"dataset {name!r} is shared (placed under DATA_ROOT by an admin) "
                            "and cannot be deleted through the API")
    remove(folder, settings.data_root)
    return Response(status_code=204)


@router.get("/{name}/preview/{video_id}.png", response_class=Response, responses={
    200: {"content": {"image/png": {}}, "description": "frames with ground-truth masks and phrases"},
    **responses(401, 404, 422)})
def preview(name: str, video_id: int, settings: SettingsDep, caller: CurrentUser) -> Response:
    """A contact sheet of up to 16 evenly spaced frames of one video, masks and phrases drawn."""
    folder, _ = _find(settings, caller, name)
    from sam3_video.overlays import video_sheet  # drawing: loaded on first use

    try:
        ds = load_native(folder)
    except DatasetError as err:
        raise ApiError(422, f"dataset {name!r} cannot be read: {err.problems[0]}"[:300],
                       err.problems[:MAX_PROBLEMS]) from None
    video = ds.videos.get(video_id)
    if video is None:
        raise ApiError(404, f"video {video_id} not found in dataset {name!r}")
    try:
        sheet = video_sheet(ds, video_id, max_frames=PREVIEW_FRAMES)
    except OSError:
        raise ApiError(422, f"dataset {name!r}: a frame of video {video_id} cannot be read") from None
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png")
