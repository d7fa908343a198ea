"""Request and response bodies. The job spec itself (TrainConfig / EvalConfig) lives in
sam3_video.config and is validated there; here it is an opaque JSON object."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

JobState = Literal["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]

# Job configs are a few levels deep; the limit keeps recursive code (hashing the body for
# Idempotency-Key, serialising, pydantic) far from Python's recursion limit.
MAX_CONFIG_DEPTH = 32


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """True if objects/arrays nest more than `limit` levels (counted without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["train", "eval"]
    name: str | None = Field(default=None, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$",
                             description="free label, for filtering")
    config: dict[str, Any] = Field(description="a TrainConfig (kind=train) or EvalConfig "
                                   "(kind=eval) from sam3_video.config; paths relative to DATA_ROOT")
    gpus: int | None = Field(default=None, ge=0, le=64,
                             description="overrides config.gpus; 0 runs on CPU")
    priority: int = Field(default=0, ge=0, le=9)
    time_limit_s: int | None = Field(
        default=None, ge=1, description="seconds of running time this job may use; at most "
        "the server's SAM3V_JOB_TIME_LIMIT_S (the default). Past it the worker stops the job "
        "(it checkpoints first) and it fails with kind time_limit")

    @field_validator("config")
    @classmethod
    def _bounded_depth(cls, config: dict[str, Any]) -> dict[str, Any]:
        if json_depth_exceeds(config, MAX_CONFIG_DEPTH):
            raise ValueError(f"nested more than {MAX_CONFIG_DEPTH} levels deep (objects and "
                             "arrays); a job config is a few levels deep")
        return config


class Progress(BaseModel):
    step: int
    max_steps: int | None
    fraction: float | None
    eta_seconds: float | None = Field(description="from recent step times of this attempt")


class Failure(BaseModel):
    kind: str | None = Field(description="config | oom | infrastructure | cancelled | "
                             "time_limit | disk_quota | disk_full")
    message: str | None


class MetricValue(BaseModel):
    step: int
    value: float | None
    time: float


class AttemptOut(BaseModel):
    number: int
    worker_id: str | None
    started_at: str
    finished_at: str | None
    outcome: str | None
    reason: str | None


class JobOut(BaseModel):
    id: int
    kind: str
    name: str | None
    state: JobState
    owner: str
    priority: int
    gpus: int
    queue: str
    attempt: int
    max_attempts: int
    time_limit_s: int | None = Field(
        default=None, description="the job's own running-time limit; null: the server's "
        "SAM3V_JOB_TIME_LIMIT_S")
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None
    progress: Progress
    failure: Failure | None
    last_metrics: dict[str, MetricValue] | None = Field(
        default=None, description="newest value per metric (job detail only)")
    evaluation: dict[str, dict[str, float | None]] | None = Field(
        default=None, description="training with validation: base, final and delta metrics")
    attempts: list[AttemptOut] | None = None
    parameters: dict[str, int] | None = Field(
        default=None, description="training: the model's parameter counts {total, trainable} "
        "(the trainer's step-0 params_total / params_trainable line; job detail only)")
    config: dict[str, Any]
    links: dict[str, str]


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next (older) page")


class MetricPoint(BaseModel):
    step: int
    value: float | None
    time: float


class MetricSeries(BaseModel):
    name: str
    total_points: int = Field(description="points before downsampling")
    points: list[MetricPoint]


class MetricsOut(BaseModel):
    job_id: int
    series: list[MetricSeries]


class LogChunk(BaseModel):
    attempt: int
    offset: int
    next_offset: int
    size: int = Field(description="current size of the log file in bytes")
    eof: bool
    text: str


class CheckpointOut(BaseModel):
    name: str
    step: int
    size_bytes: int
    sha256: str
    created_at: str
    available: bool = Field(description="false once the trainer pruned the file (keep_last)")
    url: str


class CheckpointList(BaseModel):
    job_id: int
    checkpoints: list[CheckpointOut]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    database: str
    broker: str
