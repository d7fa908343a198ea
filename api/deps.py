"""Shared route dependency: the job named in the path, if the caller may see it."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy import Engine

import jobstore
from api.auth import Caller, current_caller
from api.errors import ApiError


MAX_ID = 2**31 - 1  # ids are 32-bit INTEGER columns on PostgreSQL
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="job id")]


def load_visible_job(engine: Engine, job_id: int, caller: Caller) -> jobstore.Job:
    """The job if the caller may see it; another user's job is indistinguishable from none."""
    job = jobstore.get_job(job_id, engine=engine) if 1 <= job_id <= MAX_ID else None
    if job is None or not (caller.is_admin or job.owner_id == caller.id):
        raise ApiError(404, f"job {job_id} not found")
    return job


def visible_job(job_id: JobId, request: Request, caller: Caller = Depends(current_caller)) -> jobstore.Job:
    return load_visible_job(request.app.state.engine, job_id, caller)
