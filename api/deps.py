"""Route dependencies, as aliases a route takes as parameters (the FastAPI full-stack
template's style): the app's settings and engine, the caller, and the job named in the
path if the caller may see it. Routes never reach into request.app.state themselves;
create_app(settings) puts the settings, engine and telemetry there, these read them."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

import jobstore
from api.auth import UNAUTHORIZED, Caller, TokenRejected, authenticate
from api.errors import ApiError
from api.streams import OpenStreams
from api.telemetry import Telemetry
from jobstore.settings import Settings

MAX_ID = 2**31 - 1  # ids are 32-bit INTEGER columns on PostgreSQL
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="job id")]


def get_settings(request: Request) -> Settings:
    """The settings the app was created with (create_app(settings)), not re-read per request."""
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_telemetry(request: Request) -> Telemetry:
    return request.app.state.telemetry


def get_open_streams(request: Request) -> OpenStreams:
    return request.app.state.open_streams


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
TelemetryDep = Annotated[Telemetry, Depends(get_telemetry)]
OpenStreamsDep = Annotated[OpenStreams, Depends(get_open_streams)]


# FastAPI's bearer scheme: it puts the security scheme in the OpenAPI document (the
# Authorize button in /docs, auth in generated clients) and parses the header. With
# auto_error=False it answers None instead of its own 401, so the messages below stay ours.
bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="an API token from `sam3v tokens create`: "
                                "`Authorization: Bearer <token>`")


def current_caller(request: Request, engine: EngineDep,
                   credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    """The caller named by `Authorization: Bearer <token>`, or 401."""
    if credentials is None:  # no header, another scheme, or no token after "Bearer"
        if not request.headers.get("authorization"):
            raise HTTPException(401, "missing Authorization header (expected 'Bearer <token>')",
                                headers=UNAUTHORIZED)
        raise HTTPException(401, "Authorization header must be 'Bearer <token>'", headers=UNAUTHORIZED)
    try:
        return authenticate(engine, credentials.credentials)
    except TokenRejected as err:  # "invalid token", "token expired at ...", "token revoked at ..."
        raise HTTPException(401, str(err), headers=UNAUTHORIZED) from None


CurrentUser = Annotated[Caller, Depends(current_caller)]


def admin_caller(caller: CurrentUser) -> Caller:
    """The caller if an admin, else 403 (a valid token, but not enough)."""
    if not caller.is_admin:
        raise ApiError(403, f"admins only; user {caller.name!r} is not an admin")
    return caller


AdminUser = Annotated[Caller, Depends(admin_caller)]


def load_visible_job(engine: Engine, job_id: int, caller: Caller) -> jobstore.Job:
    """The job if the caller may see it; another user's job is indistinguishable from none."""
    job = jobstore.get_job(job_id, engine=engine) if 1 <= job_id <= MAX_ID else None
    if job is None or not (caller.is_admin or job.owner_id == caller.id):
        raise ApiError(404, f"job {job_id} not found")
    return job


def visible_job(job_id: JobId, engine: EngineDep, caller: CurrentUser) -> jobstore.Job:
    return load_visible_job(engine, job_id, caller)


VisibleJob = Annotated[jobstore.Job, Depends(visible_job)]
