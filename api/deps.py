"""Shared route dependencies: settings, engine, the caller, and the caller's job."""
from __future__ import annotations

from fastapi import Depends, Request
from sqlalchemy import Engine

from api import store
from api.auth import Caller, current_caller
from api.errors import ApiError
from api.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_engine_dep(request: Request) -> Engine:
    return request.app.state.engine


def load_visible_job(engine: Engine, job_id: int, caller: Caller) -> store.Job:
    """The job if the caller may see it; another user's job is indistinguishable from none."""
    job = store.get_job(job_id, engine=engine)
    if job is None or not (caller.is_admin or job.owner_id == caller.id):
        raise ApiError(404, f"job {job_id} not found")
    return job


def visible_job(job_id: int, request: Request, caller: Caller = Depends(current_caller)) -> store.Job:
    return load_visible_job(request.app.state.engine, job_id, caller)
