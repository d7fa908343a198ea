"""Liveness, readiness and Prometheus metrics."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text

import jobstore
from jobstore import broker
from api.auth import current_caller
from api.errors import error_response, responses
from api.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up (no dependencies checked)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses=responses(503))
def readyz(request: Request):
    """The database and the broker both answer."""
    problems = []
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as err:
        problems.append(f"database: {type(err).__name__}: {err}"[:300])
    try:
        broker.ping(request.app.state.settings)
    except Exception as err:
        problems.append(f"broker: {type(err).__name__}: {err}"[:300])
    if problems:
        return error_response(503, "not ready: " + "; ".join(problems), problems)
    return Readiness(database="ok", broker="ok")


@router.get("/metrics", response_class=Response, dependencies=[Depends(current_caller)],
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
                       **responses(401)})
def prometheus(request: Request) -> Response:
    """Jobs by state, queue depth per served queue, request latencies."""
    telemetry = request.app.state.telemetry
    with jobstore.session_scope(request.app.state.engine, write=False) as s:
        counts = dict(s.execute(select(jobstore.Job.state, func.count()).group_by(jobstore.Job.state)).all())
    for state in jobstore.JOB_STATES:
        telemetry.jobs.labels(state).set(counts.get(state, 0))
    try:
        for queue, depth in broker.queue_depths(request.app.state.settings).items():
            telemetry.queue_depth.labels(queue).set(depth)
        telemetry.broker_up.set(1)
    except Exception:
        telemetry.broker_up.set(0)
    return Response(generate_latest(telemetry.registry), media_type=CONTENT_TYPE_LATEST)
