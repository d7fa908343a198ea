"""Checkpoint listing and ranged download, streamed from disk (never read whole)."""
from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from sqlalchemy import select

import jobstore
from api.deps import EngineDep, VisibleJob
from api.errors import ApiError, responses
from api.schemas import CheckpointList, CheckpointOut
from api.views import iso
from sam3_video.run_layout import CHECKPOINT_NAME

router = APIRouter(prefix="/jobs/{job_id}/checkpoints", tags=["checkpoints"])
RANGE = re.compile(r"^\s*([0-9]*)\s*-\s*([0-9]*)\s*$")  # ASCII digits (\d takes any script's)
MAX_DIGITS = 18  # 10**18 bytes is past any file; int() refuses > 4300 digits (was a 500)


@router.get("", response_model=CheckpointList, responses=responses(401, 404, 422))
def list_checkpoints(job: VisibleJob, engine: EngineDep) -> CheckpointList:
    with jobstore.session_scope(engine, write=False) as s:
        rows = s.scalars(select(jobstore.Checkpoint).where(jobstore.Checkpoint.job_id == job.id)
                         .order_by(jobstore.Checkpoint.step)).all()
    return CheckpointList(job_id=job.id, checkpoints=[
        CheckpointOut(name=c.name, step=c.step, size_bytes=c.size_bytes, sha256=c.sha256,
                      created_at=iso(c.created_at), available=Path(c.path).is_file(),
                      url=f"/jobs/{job.id}/checkpoints/{c.name}") for c in rows])


def check_range(header: str, size: int) -> None:
    """Refuse (416, with the reason) a Range we cannot serve; FileResponse serves the rest."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        raise ApiError(416, f"Range header: expected 'bytes=START-END', got {header[:100]!r}",
                       headers={"Content-Range": f"bytes */{size}"})
    for part in spec.split(","):
        m = RANGE.match(part)
        if not m or (m.group(1) == "" and m.group(2) == ""):
            raise ApiError(416, f"Range header: malformed range {part.strip()[:50]!r}",
                           headers={"Content-Range": f"bytes */{size}"})
        start, end = m.group(1), m.group(2)
        if len(start) > MAX_DIGITS or len(end) > MAX_DIGITS:
            raise ApiError(416, f"Range header: {part.strip()[:50]!r}: positions have at most "
                                f"{MAX_DIGITS} digits (the file has {size} bytes)",
                           headers={"Content-Range": f"bytes */{size}"})
        if start and end and int(end) < int(start):
            raise ApiError(416, f"Range header: range {part.strip()!r} ends before it starts",
                           headers={"Content-Range": f"bytes */{size}"})
        if (start and int(start) >= size) or (not start and (size == 0 or int(end) == 0)):
            raise ApiError(416, f"Range header: {part.strip()!r} lies beyond the file's {size} bytes",
                           headers={"Content-Range": f"bytes */{size}"})


@router.get("/{name}", response_class=FileResponse, responses={
    200: {"content": {"application/octet-stream": {}}, "description": "the whole file"},
    206: {"content": {"application/octet-stream": {}}, "description": "the requested range"},
    **responses(401, 404, 416, 422)})
def download_checkpoint(name: str, request: Request, job: VisibleJob, engine: EngineDep):
    """The checkpoint file. Supports Range/If-Range; ETag and X-Checksum-Sha256 carry its sha256."""
    ckpt = None
    if CHECKPOINT_NAME.match(name):
        with jobstore.session_scope(engine, write=False) as s:
            ckpt = s.get(jobstore.Checkpoint, (job.id, name))
    if ckpt is None:
        raise ApiError(404, f"checkpoint {name!r} of job {job.id} not found")
    path = Path(ckpt.path)
    if not path.is_file():
        raise ApiError(404, f"checkpoint {name!r} of job {job.id} was pruned from disk "
                            "(the trainer keeps the last keep_last files)")
    size = path.stat().st_size
    if request.headers.get("range"):
        check_range(request.headers["range"], size)
    return FileResponse(path, media_type="application/octet-stream", filename=name,
                        headers={"ETag": f'"{ckpt.sha256}"', "X-Checksum-Sha256": ckpt.sha256})
