"""Job lifecycle routes: submit, list, inspect, cancel, retry, delete."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import shutil
import time
from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, Response
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

import jobstore
from api.auth import Caller
from api.deps import MAX_ID, CurrentUser, EngineDep, SettingsDep, VisibleJob
from api.errors import ApiError, responses
from api.schemas import JOB_EXAMPLES, JobCreate, JobList, JobOut, JobState
from api.validation import validate_job
from api.views import job_detail, job_out, owner_names
from jobstore import broker
from jobstore.queues import queue_name
from jobstore.settings import Settings
from sam3_video.run_layout import job_dir

router = APIRouter(prefix="/jobs", tags=["jobs"])

IdempotencyHeader = Annotated[str | None, Header(
    alias="Idempotency-Key", max_length=200, pattern=r"^[\x21-\x7e]+$",
    description="same key + same body returns the original job (200); another body: 409")]


def _body_sha256(body: JobCreate) -> str:
    return hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def _replay(session, caller: Caller, key: str, body_hash: str) -> jobstore.Job | None:
    """The job an earlier request with this key created, or None; 409 if the body differs."""
    row = session.get(jobstore.IdempotencyKey, (caller.id, key))
    if row is None:
        return None
    if row.body_sha256 != body_hash:
        raise ApiError(409, f"Idempotency-Key {key!r} was already used with a different body")
    return session.get(jobstore.Job, row.job_id)


def check_job_limit(session, settings: Settings, owner_id: int, owner_name: str,
                    is_admin: bool) -> None:
    """429 if the owner already has SAM3V_MAX_ACTIVE_JOBS_PER_USER queued or running jobs
    (admins are exempt unless SAM3V_ADMINS_EXEMPT_FROM_JOB_LIMIT=false). Called inside the
    transaction that queues the job, with the owner's row locked, so concurrent submits
    cannot overshoot the limit."""
    if is_admin and settings.admins_exempt_from_job_limit:
        return
    limit = settings.max_active_jobs_per_user
    active = jobstore.active_jobs_of(session, owner_id, lock=True)
    if active >= limit:
        raise ApiError(429, f"user {owner_name!r} has {active} queued or running jobs; the "
                            f"limit is {limit} (SAM3V_MAX_ACTIVE_JOBS_PER_USER): wait for one to "
                            "finish or cancel one",
                       [f"max_active_jobs_per_user: {active} of {limit} in use"])


@router.post("", status_code=201, response_model=JobOut,
             responses={200: {"model": JobOut, "description": "Idempotent replay: the original job"},
                        **responses(400, 401, 409, 413, 422, 429)})
def create_job(body: Annotated[JobCreate, Body(openapi_examples=JOB_EXAMPLES)], response: Response, settings: SettingsDep, engine: EngineDep,
               caller: CurrentUser, idempotency_key: IdempotencyHeader = None) -> JobOut:
    """Validate, store as queued, enqueue. 201 with Location; see Idempotency-Key."""
    body_hash = _body_sha256(body)
    if idempotency_key:
        with jobstore.session_scope(engine, write=False) as s:
            job = _replay(s, caller, idempotency_key, body_hash)
        if job is not None:
            return _replayed(response, engine, settings, job)
    config = validate_job(body, settings, engine, caller)

    for try_number in range(2):
        try:
            with jobstore.session_scope(engine) as s:  # BEGIN IMMEDIATE: keyed POSTs serialise
                earlier = _replay(s, caller, idempotency_key, body_hash) if idempotency_key else None
                if earlier is not None:
                    break
                check_job_limit(s, settings, caller.id, caller.name, caller.is_admin)
                job = jobstore.create_job(
                    s, owner_id=caller.id, kind=body.kind, name=body.name,
                    config=config.model_dump(mode="json"), gpus=config.gpus,
                    queue=queue_name(config.gpus, getattr(config, "nodes", 1)), priority=body.priority,
                    max_attempts=settings.max_attempts, time_limit_s=body.time_limit_s,
                    webhook_url=body.webhook_url)
                if idempotency_key:
                    s.add(jobstore.IdempotencyKey(user_id=caller.id, key=idempotency_key,
                                               body_sha256=body_hash, job_id=job.id,
                                               created_at=time.time()))
            break
        except IntegrityError:
            # PostgreSQL: a concurrent request inserted the same key first; the next
            # pass finds it and replays. Twice in a row is not expected; say so.
            if try_number == 1:
                raise ApiError(409, f"Idempotency-Key {idempotency_key!r} is in use by a "
                                    "concurrent request; retry") from None
    if earlier is not None:
        return _replayed(response, engine, settings, earlier)
    # After commit: the row is the truth even if this send is lost (the reaper re-sends).
    broker.enqueue(settings, job.id, job.gpus, priority=job.priority, engine=engine, nodes=job.nodes)
    response.headers["Location"] = f"/jobs/{job.id}"
    return job_out(job, caller.name)


def _replayed(response: Response, engine: Engine, settings: Settings, job: jobstore.Job) -> JobOut:
    response.status_code = 200
    response.headers["Location"] = f"/jobs/{job.id}"
    return job_detail(engine, job, settings.runs_root)


def _encode_cursor(before_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": before_id}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        before = data["before"]
        if isinstance(before, int) and not isinstance(before, bool) and 0 < before <= MAX_ID + 1:
            return before
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        pass
    raise ApiError(400, "cursor: not a cursor returned by GET /jobs")


@router.get("", response_model=JobList, responses=responses(400, 401, 422))
def list_jobs(engine: EngineDep, caller: CurrentUser,
              state: JobState | None = None, kind: Annotated[str | None, Query(pattern="^(train|eval|predict)$")] = None,
              name: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")] = None,
              limit: Annotated[int, Query(ge=1, le=200)] = 50,
              cursor: Annotated[str | None, Query(max_length=200)] = None) -> JobList:
    """The caller's jobs (admins: everyone's), newest first, `limit` per page."""
    query = select(jobstore.Job).order_by(jobstore.Job.id.desc()).limit(limit + 1)
    if not caller.is_admin:
        query = query.where(jobstore.Job.owner_id == caller.id)
    if state:
        query = query.where(jobstore.Job.state == state)
    if kind:
        query = query.where(jobstore.Job.kind == kind)
    if name is not None:
        query = query.where(jobstore.Job.name == name)
    if cursor:
        query = query.where(jobstore.Job.id < _decode_cursor(cursor))
    with jobstore.session_scope(engine, write=False) as s:
        jobs = list(s.scalars(query))
        names = owner_names(s, {j.owner_id for j in jobs})
    page = jobs[:limit]
    next_cursor = _encode_cursor(page[-1].id) if len(jobs) > limit else None
    return JobList(items=[job_out(j, names.get(j.owner_id, "?")) for j in page], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobOut, responses=responses(401, 404, 422))
def get_job(job: VisibleJob, settings: SettingsDep, engine: EngineDep) -> JobOut:
    """State, attempt, timestamps, progress and ETA, last metrics, failure reason, links."""
    return job_detail(engine, job, settings.runs_root)


@router.post("/{job_id}/cancel", response_model=JobOut, responses=responses(401, 404, 409, 422))
def cancel_job(job: VisibleJob, settings: SettingsDep, engine: EngineDep) -> JobOut:
    """queued: cancelled at once; running: cancelling until the worker confirms. Idempotent."""
    if job.state in ("succeeded", "failed"):
        raise ApiError(409, f"job {job.id} already {job.state}; nothing to cancel")
    job = jobstore.cancel_job(job.id, engine=engine) or job
    return job_detail(engine, job, settings.runs_root)


@router.post("/{job_id}/retry", response_model=JobOut,
             responses=responses(401, 404, 409, 422, 429))
def retry_job(job: VisibleJob, settings: SettingsDep, engine: EngineDep) -> JobOut:
    """failed/cancelled -> queued; the next attempt resumes from the latest checkpoint.
    The job counts against its owner's SAM3V_MAX_ACTIVE_JOBS_PER_USER again (429)."""
    if job.state in ("failed", "cancelled"):
        with jobstore.session_scope(engine) as s:
            owner = s.get(jobstore.User, job.owner_id)
            check_job_limit(s, settings, owner.id, owner.name, owner.is_admin)
    retried = jobstore.retry_job(job.id, settings.max_attempts, engine=engine)
    if retried is None:
        raise ApiError(409, f"job {job.id} is {job.state}; only failed or cancelled jobs can be retried")
    broker.enqueue(settings, retried.id, retried.gpus, priority=retried.priority, engine=engine,
                   nodes=retried.nodes)
    return job_detail(engine, retried, settings.runs_root)


@router.delete("/{job_id}", status_code=204, response_class=Response,
               responses=responses(401, 404, 409, 422))
def delete_job(job: VisibleJob, settings: SettingsDep, engine: EngineDep) -> Response:
    """Finished jobs only: removes the rows and the run directory."""
    deleted = jobstore.delete_job(job.id, engine=engine)
    if deleted is None:
        raise ApiError(409, f"job {job.id} is {job.state}; cancel it and wait until it is finished")
    run_dir = job_dir(settings.runs_root, deleted.id).resolve()
    if settings.runs_root in run_dir.parents:  # never remove anything outside RUNS_ROOT
        shutil.rmtree(run_dir, ignore_errors=True)
    return Response(status_code=204)
