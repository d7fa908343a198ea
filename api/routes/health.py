"""Liveness, readiness and Prometheus metrics."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text

import jobstore
from api.deps import EngineDep, SettingsDep, TelemetryDep, admin_caller
from api.errors import error_response, responses
from api.schemas import Health, Readiness
from jobstore import broker

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up (no dependencies checked)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses=responses(503))
def readyz(settings: SettingsDep, engine: EngineDep):
    """The database and the broker both answer. Unauthenticated, so a failure says only
    which one is down: the reason (which names hosts, databases, users) goes to the log."""
    problems = []
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as err:
        log.warning("readyz: the database did not answer: %s: %s", type(err).__name__, err)
        problems.append("database unavailable")
    try:
        broker.ping(settings)  # one pooled connection per broker URL, reused (jobstore.broker)
    except Exception as err:
        log.warning("readyz: the broker did not answer: %s: %s", type(err).__name__, err)
        problems.append("broker unavailable")
    if problems:
        return error_response(503, "not ready: " + "; ".join(problems), problems)
    return Readiness(database="ok", broker="ok")


@router.get("/metrics", response_class=Response, dependencies=[Depends(admin_caller)],
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
                       **responses(401, 403)})
def prometheus(settings: SettingsDep, engine: EngineDep, telemetry: TelemetryDep) -> Response:
    """Jobs by state, queue depth per served queue, request latencies. Admins only: the
    counts cover every user's jobs."""
    with jobstore.session_scope(engine, write=False) as s:
        counts = dict(s.execute(select(jobstore.Job.state, func.count()).group_by(jobstore.Job.state)).all())
    for state in jobstore.JOB_STATES:
        telemetry.jobs.labels(state).set(counts.get(state, 0))
    try:
        for queue, depth in broker.queue_depths(settings).items():
            telemetry.queue_depth.labels(queue).set(depth)
        telemetry.broker_up.set(1)
    except Exception:
        telemetry.broker_up.set(0)
    return Response(generate_latest(telemetry.registry), media_type=CONTENT_TYPE_LATEST)
