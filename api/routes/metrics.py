"""A job's metric time series and its attempt logs."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

import jobstore
from api.deps import EngineDep, SettingsDep, VisibleJob
from api.errors import ApiError, responses
from api.schemas import LogChunk, MetricPoint, MetricSeries, MetricsOut
from api.views import finite
from sam3_video.run_layout import job_dir, log_path

router = APIRouter(prefix="/jobs/{job_id}", tags=["jobs"])

Point = tuple[int, float | None, float]


def downsample(points: list[Point], max_points: int) -> list[Point]:
    """Keep the curve's shape: split into max_points/2 buckets, keep each bucket's min
    and max (in step order), so spikes survive where every-Nth sampling would drop them."""
    if len(points) <= max_points:
        return points
    buckets = max_points // 2
    size = len(points) / buckets
    out: list[Point] = []
    for b in range(buckets):
        chunk = points[int(b * size):int((b + 1) * size)]
        valued = [p for p in chunk if p[1] is not None] or chunk[:1]
        low = min(valued, key=lambda p: p[1] if p[1] is not None else 0)
        high = max(valued, key=lambda p: p[1] if p[1] is not None else 0)
        out.extend(sorted({low, high}, key=lambda p: p[0]))
    return out


@router.get("/metrics", response_model=MetricsOut, responses=responses(401, 404, 422))
def get_metrics(job: VisibleJob, engine: EngineDep,
                names: Annotated[str | None, Query(max_length=2000, pattern=r"^[^\x00-\x1f]*$",
                                                    description="comma list; default all")] = None,
                since_step: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
                max_points: Annotated[int, Query(ge=2, le=100_000)] = 1000) -> MetricsOut:
    """Time series per metric name from `since_step`, at most `max_points` per series."""
    query = (select(jobstore.Metric.name, jobstore.Metric.step, jobstore.Metric.value, jobstore.Metric.time)
             .where(jobstore.Metric.job_id == job.id, jobstore.Metric.step >= since_step)
             .order_by(jobstore.Metric.name, jobstore.Metric.step))
    wanted = [n.strip() for n in names.split(",") if n.strip()] if names else []
    if wanted:
        query = query.where(jobstore.Metric.name.in_(wanted))
    series: dict[str, list[Point]] = {}
    with jobstore.session_scope(engine, write=False) as s:
        for name, step, value, t in s.execute(query):
            series.setdefault(name, []).append((step, finite(value), t))
    return MetricsOut(job_id=job.id, series=[
        MetricSeries(name=name, total_points=len(points),
                     points=[MetricPoint(step=st, value=v, time=t)
                             for st, v, t in downsample(points, max_points)])
        for name, points in series.items()])


@router.get("/logs", response_model=LogChunk, responses=responses(401, 404, 416, 422))
def get_logs(job: VisibleJob, settings: SettingsDep,
             attempt: Annotated[int | None, Query(ge=1, le=10_000, description="default: the current attempt")] = None,
             offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
             limit: Annotated[int, Query(ge=1, le=1024 * 1024)] = 64 * 1024) -> LogChunk:
    """Up to `limit` bytes of RUN_DIR/logs/attempt-N.log from byte `offset`."""
    attempt = attempt or job.attempt
    if attempt < 1 or attempt > job.attempt:
        raise ApiError(404, f"attempt: job {job.id} has no attempt {attempt} "
                            f"(attempts so far: {job.attempt})")
    path = log_path(job_dir(settings.runs_root, job.id), attempt)
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            if offset > size:
                raise ApiError(416, f"offset: {offset} lies beyond the log's {size} bytes")
            f.seek(offset)
            data = f.read(limit)
    except FileNotFoundError:  # the worker has not written anything yet
        size, data = 0, b""
        if offset > 0:
            raise ApiError(416, f"offset: {offset} lies beyond the log's 0 bytes") from None
    end = offset + len(data)
    return LogChunk(attempt=attempt, offset=offset, next_offset=end, size=size,
                    eof=end >= size, text=data.decode("utf-8", errors="replace"))
