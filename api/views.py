"""Turn store rows into response bodies (JobOut): progress, ETA, metrics, evaluation."""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

import jobstore
from api.schemas import AttemptOut, Failure, JobOut, MetricValue, Progress, SlurmRun
from sam3_video.run_layout import EVALUATION_FILE, job_dir, slurm_record_path

ETA_WINDOW = 20  # recent steps used for the rate
ETA_METRIC = "loss"  # every training step logs it


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat()


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def links(job_id: int) -> dict[str, str]:
    base = f"/jobs/{job_id}"
    return {"self": base, "metrics": f"{base}/metrics", "logs": f"{base}/logs",
            "events": f"{base}/events", "checkpoints": f"{base}/checkpoints",
            "cancel": f"{base}/cancel", "retry": f"{base}/retry"}


def eta_from_steps(session: Session, job: jobstore.Job) -> float | None:
    """Seconds left, from the step rate of this attempt's recent training steps
    (the 'loss' series, read backwards along its primary-key index)."""
    if job.state != "running" or not job.max_steps:
        return None
    rows = session.execute(
        select(jobstore.Metric.step, jobstore.Metric.time)
        .where(jobstore.Metric.job_id == job.id, jobstore.Metric.name == ETA_METRIC,
               jobstore.Metric.attempt == job.attempt)
        .order_by(jobstore.Metric.step.desc()).limit(ETA_WINDOW)).all()
    if len(rows) < 2:
        return job.eta_seconds
    (last_step, last_t), (first_step, first_t) = rows[0], rows[-1]
    if last_t <= first_t:
        return job.eta_seconds
    rate = (last_step - first_step) / (last_t - first_t)
    return max(0.0, (job.max_steps - max(job.step, last_step)) / rate) if rate > 0 else None


def last_metrics(session: Session, job_id: int) -> dict[str, MetricValue]:
    rows = session.scalars(select(jobstore.MetricLatest).where(jobstore.MetricLatest.job_id == job_id)
                           .order_by(jobstore.MetricLatest.name))
    return {m.name: MetricValue(step=m.step, value=finite(m.value), time=m.time) for m in rows}


def parameter_counts(metrics: dict[str, MetricValue]) -> dict[str, int] | None:
    """{total, trainable} from the trainer's params_total / params_trainable metrics."""
    total, trainable = metrics.get("params_total"), metrics.get("params_trainable")
    if total is None or trainable is None or total.value is None or trainable.value is None:
        return None
    return {"total": int(total.value), "trainable": int(trainable.value)}


def _numbers(d) -> dict[str, float | None]:
    if not isinstance(d, dict):
        return {}
    return {str(k): finite(float(v)) for k, v in d.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def evaluation(session: Session, job: jobstore.Job, run_dir: Path) -> dict | None:
    """{"base", "final", "delta"} for a training job with validation metrics: from
    RUN_DIR/evaluation.json when written, else from the first and last val/* metrics."""
    if job.kind != "train":
        return None
    base, final = {}, {}
    path = run_dir / EVALUATION_FILE
    try:
        data = json.loads(path.read_text())
        base, final = _numbers(data.get("base")), _numbers(data.get("final"))
    except (OSError, ValueError, AttributeError):
        # A name range ('val0' follows 'val/') instead of LIKE, so the index is used.
        rows = session.scalars(select(jobstore.Metric).where(
            jobstore.Metric.job_id == job.id, jobstore.Metric.name >= "val/", jobstore.Metric.name < "val0")
            .order_by(jobstore.Metric.step)).all()
        if rows:
            first_step, last_step = rows[0].step, rows[-1].step
            base = {m.name: finite(m.value) for m in rows if m.step == first_step}
            if last_step != first_step:
                final = {m.name: finite(m.value) for m in rows if m.step == last_step}
    if not base and not final:
        return None
    delta = {k: (final[k] - base[k]) for k in base.keys() & final.keys()
             if base[k] is not None and final[k] is not None}
    return {"base": base, "final": final, "delta": delta}


def slurm_run(run_dir: Path | None, attempt: int) -> SlurmRun | None:
    """The SLURM job of an attempt, as its worker recorded it; None for a local run."""
    if run_dir is None:
        return None
    try:
        data = json.loads(slurm_record_path(run_dir, attempt).read_text())
        return SlurmRun(job_id=str(data["slurm_job_id"]), nodes=list(data.get("nodes") or []),
                        state=str(data.get("state", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def job_out(job: jobstore.Job, owner: str, session: Session | None = None,
            run_dir: Path | None = None) -> JobOut:
    """The job's JSON. With a session and the job's run directory: the detail view (ETA,
    metrics, evaluation, attempts)."""
    eta = eta_from_steps(session, job) if session is not None else job.eta_seconds
    fraction = min(1.0, job.step / job.max_steps) if job.max_steps else None
    if job.state == "succeeded":
        fraction = 1.0
    failure = (Failure(kind=job.reason_kind, message=job.reason)
               if job.state in ("failed", "cancelled") else None)
    out = JobOut(
        id=job.id, kind=job.kind, name=job.name, state=job.state, owner=owner,
        priority=job.priority, gpus=job.gpus, nodes=job.nodes, queue=job.queue, attempt=job.attempt,
        max_attempts=job.max_attempts, time_limit_s=job.time_limit_s,
        webhook_url=job.webhook_url,
        created_at=iso(job.created_at),
        updated_at=iso(job.updated_at), started_at=iso(job.started_at),
        finished_at=iso(job.finished_at),
        progress=Progress(step=job.step, max_steps=job.max_steps, fraction=fraction,
                          eta_seconds=finite(eta) if job.state == "running" else None),
        failure=failure, config=job.config, links=links(job.id))
    if session is not None:
        out.last_metrics = last_metrics(session, job.id)
        out.parameters = parameter_counts(out.last_metrics)
        out.evaluation = evaluation(session, job, run_dir)
        out.attempts = [AttemptOut(number=a.number, worker_id=a.worker_id,
                                   started_at=iso(a.started_at), finished_at=iso(a.finished_at),
                                   outcome=a.outcome, reason=a.reason,
                                   slurm=slurm_run(run_dir, a.number))
                        for a in session.scalars(select(jobstore.Attempt)
                                                 .where(jobstore.Attempt.job_id == job.id)
                                                 .order_by(jobstore.Attempt.number))]
    return out


def owner_names(session: Session, owner_ids: set[int]) -> dict[int, str]:
    if not owner_ids:
        return {}
    return dict(session.execute(select(jobstore.User.id, jobstore.User.name)
                                .where(jobstore.User.id.in_(owner_ids))).all())


def job_detail(engine, job: jobstore.Job, runs_root: Path) -> JobOut:
    with jobstore.session_scope(engine, write=False) as s:
        return job_out(job, owner_names(s, {job.owner_id}).get(job.owner_id, "?"), s,
                       job_dir(runs_root, job.id))
