"""A job's metric time series and its attempt logs."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import BigInteger, Integer, asc, case, cast, desc, func, literal, select, union

import jobstore
from api.deps import EngineDep, SettingsDep, VisibleJob
from api.errors import ApiError, responses
from api.schemas import LogChunk, MetricPoint, MetricSeries, MetricsOut
from api.views import finite
from sam3_video.run_layout import job_dir, log_path

router = APIRouter(prefix="/jobs/{job_id}", tags=["jobs"])

Point = tuple[int, float | None, float]


def downsample(points: list[Point], max_points: int) -> list[Point]:
    """Keep the curve's shape: split the series' step range into max_points // 2 buckets
    of equal width (for steps logged at a fixed interval, the trainer's way, that is equal
    point counts too) and keep each bucket's min and max point (in step order; of equal
    values the first; a bucket of only nulls keeps its first point), so spikes survive
    where every-Nth sampling would drop them. `points` are in step order. The route does
    this in SQL (bucket_extremes); this is the reference its tests compare with."""
    if len(points) <= max_points:
        return points
    buckets = max_points // 2
    first, span = points[0][0], points[-1][0] - points[0][0] + 1
    chunks: dict[int, list[Point]] = {}
    for p in points:  # step first + d is in bucket i iff i*span//buckets <= d < (i+1)*span//buckets
        chunks.setdefault(((p[0] - first + 1) * buckets - 1) // span, []).append(p)
    out: list[Point] = []
    for chunk in chunks.values():
        valued = [p for p in chunk if p[1] is not None] or chunk[:1]
        low = min(valued, key=lambda p: p[1] if p[1] is not None else 0)
        high = max(valued, key=lambda p: p[1] if p[1] is not None else 0)
        out.extend(sorted({low, high}, key=lambda p: p[0]))
    return out


def bucket_extremes(job_id: int, name: str, first: int, last: int, max_points: int):
    """downsample() as one SELECT of at most max_points rows, for a series whose steps run
    from `first` to `last`. No sort and no window function over the whole series (SQLite
    materialises those: slower than fetching every row), only range scans of the
    (job_id, name, step) primary key, two per bucket. Portable SQL: a recursive CTE numbers
    the buckets; per bucket a correlated subquery takes the first step by (nulls last,
    value, step) and another by (nulls last, value descending, step); 64-bit arithmetic,
    as steps x buckets can pass 2**31."""
    metrics = jobstore.Metric.__table__
    buckets = max_points // 2
    span = last - first + 1
    numbers = select(literal(0, Integer).label("i")).cte("buckets", recursive=True)
    numbers = numbers.union_all(select(numbers.c.i + 1).where(numbers.c.i + 1 < buckets))
    i = cast(numbers.c.i, BigInteger)
    ranges = select((first + i * span // buckets).label("lo"),
                    (first + (i + 1) * span // buckets).label("hi")).cte("ranges")

    def extreme_step(value_order):
        row = metrics.alias()
        nulls_last = case((row.c.value.is_(None), 1), else_=0)
        return (select(row.c.step)
                .where(row.c.job_id == job_id, row.c.name == name,
                       row.c.step >= ranges.c.lo, row.c.step < ranges.c.hi)
                .order_by(nulls_last, value_order(row.c.value), row.c.step).limit(1)
                .correlate(ranges).scalar_subquery())

    # An empty bucket gives NULL (the caller drops it); a bucket of only nulls, its first point.
    picked = union(select(extreme_step(asc).label("step")).select_from(ranges),
                   select(extreme_step(desc).label("step")).select_from(ranges)).cte("picked")

    def at_picked_step(column: str):  # a primary-key lookup; a join or IN here lets a
        point = metrics.alias()       # planner scan the whole series instead
        return (select(point.c[column]).where(point.c.job_id == job_id, point.c.name == name,
                                              point.c.step == picked.c.step)
                .correlate(picked).scalar_subquery())

    # No WHERE on picked: PostgreSQL would push it into the union and run each subquery twice.
    return select(picked.c.step, at_picked_step("value"), at_picked_step("time")).order_by(picked.c.step)


def downsampled_series(session, job_id: int, since_step: int, names: list[str],
                       max_points: int) -> dict[str, tuple[int, list[Point]]]:
    """{name: (points in the series, at most max_points of them)}. One aggregate over the
    primary key finds each series' length and step range, then a series of at most
    max_points is read whole, a longer one through bucket_extremes: no query returns more
    than max_points rows, however long the series."""
    m = jobstore.Metric
    where = [m.job_id == job_id, m.step >= since_step, *([m.name.in_(names)] if names else [])]
    stats = session.execute(select(m.name, func.count(), func.min(m.step), func.max(m.step))
                            .where(*where).group_by(m.name).order_by(m.name)).all()
    series: dict[str, tuple[int, list[Point]]] = {}
    for name, total, first, last in stats:
        if total <= max_points:
            query = (select(m.step, m.value, m.time)
                     .where(m.job_id == job_id, m.name == name, m.step >= first, m.step <= last)
                     .order_by(m.step))
        else:
            query = bucket_extremes(job_id, name, first, last, max_points)
        series[name] = (total, [(step, finite(value), t) for step, value, t in session.execute(query)
                                if step is not None])
    return series


@router.get("/metrics", response_model=MetricsOut, responses=responses(401, 404, 422))
def get_metrics(job: VisibleJob, engine: EngineDep,
                names: Annotated[str | None, Query(max_length=2000, pattern=r"^[^\x00-\x1f]*$",
                                                    description="comma list; default all")] = None,
                since_step: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
                max_points: Annotated[int, Query(ge=2, le=100_000)] = 1000) -> MetricsOut:
    """Time series per metric name from `since_step`, at most `max_points` per series."""
    wanted = [n.strip() for n in names.split(",") if n.strip()] if names else []
    with jobstore.session_scope(engine, write=False) as s:
        series = downsampled_series(s, job.id, since_step, wanted, max_points)
    return MetricsOut(job_id=job.id, series=[
        MetricSeries(name=name, total_points=total,
                     points=[MetricPoint(step=st, value=v, time=t) for st, v, t in points])
        for name, (total, points) in series.items()])


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
