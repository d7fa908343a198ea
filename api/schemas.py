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


# Request examples of POST /jobs (OpenAPI `examples`; a test submits each one).
JOB_EXAMPLES = {
    "train": {"summary": "fine-tune on a dataset, scored on a held-out one", "value": {
        "kind": "train", "name": "demo", "gpus": 0,
        "config": {"data": {"train": "synthetic", "val": "synthetic-val"}, "max_steps": 20,
                   "checkpoint_every": 10}}},
    "eval": {"summary": "score the base model on a dataset (model.init: a checkpoint)", "value": {
        "kind": "eval", "gpus": 0,
        "config": {"data": {"dataset": "synthetic-val"}}}},
    "predict": {"summary": "masklets and overlays on a new video", "value": {
        "kind": "predict", "gpus": 0,
        "config": {"task": "detect", "data": {"video": "synthetic-val/JPEGImages/video_000",
                                              "phrases": ["red square"]}}}},
}


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["train", "eval", "predict"]
    name: str | None = Field(default=None, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$",
                             description="free label, for filtering")
    config: dict[str, Any] = Field(description="a TrainConfig (kind=train), EvalConfig "
                                   "(kind=eval) or PredictConfig (kind=predict) from "
                                   "sam3_video.config; paths relative to DATA_ROOT")
    gpus: int | None = Field(default=None, ge=0, le=64,
                             description="overrides config.gpus; 0 runs on CPU")
    priority: int = Field(default=0, ge=0, le=9)
    time_limit_s: int | None = Field(
        default=None, ge=1, description="seconds of running time this job may use; at most "
        "the server's SAM3V_JOB_TIME_LIMIT_S (the default). Past it the worker stops the job "
        "(it checkpoints first) and it fails with kind time_limit")
    webhook_url: str | None = Field(
        default=None, max_length=2000, examples=["https://lab.example.org/hooks/sam3v"],
        description="http(s) URL that gets a signed POST (X-Sam3v-Signature: "
        "sha256=<hex HMAC-SHA256 of the raw body>) with the job summary on every state "
        "change; its host must be in the server's SAM3V_WEBHOOK_ALLOWED_HOSTS")

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


class SlurmRun(BaseModel):
    """Where a SLURM worker ran the attempt (from RUN_DIR/slurm/job-<attempt>.json)."""
    job_id: str = Field(description="the SLURM job id (squeue, scontrol show job, sacct -j)")
    nodes: list[str] = Field(description="the nodes SLURM allocated; empty while pending")
    state: str = Field(description="the SLURM job state as last seen by the worker")


class AttemptOut(BaseModel):
    number: int
    worker_id: str | None
    started_at: str
    finished_at: str | None
    outcome: str | None
    reason: str | None
    slurm: SlurmRun | None = Field(default=None, description="attempts run through SLURM")


class JobOut(BaseModel):
    id: int
    kind: str
    name: str | None
    state: JobState
    owner: str
    priority: int
    gpus: int
    nodes: int = Field(default=1, description="machines the job spans; gpus is per node")
    queue: str
    attempt: int
    max_attempts: int
    time_limit_s: int | None = Field(
        default=None, description="the job's own running-time limit; null: the server's "
        "SAM3V_JOB_TIME_LIMIT_S")
    webhook_url: str | None = None
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


class DatasetOut(BaseModel):
    name: str
    owner: str = Field(description='"shared" (placed under DATA_ROOT by an admin) or the '
                                   "uploading user's name")
    state: Literal["validating", "valid", "invalid"]
    path: str = Field(description="relative to DATA_ROOT: what a job's data.train, data.val "
                                  "or data.dataset takes")
    version: str | None = Field(description="content version: sha256 of annotations.json "
                                            "and the frame folders' names and mtimes")
    videos: int | None = Field(default=None, description="null until validated valid")
    frames: int | None = None
    objects: int | None = None
    phrases: int | None = None
    problems: list[str] = Field(default=[], description="the first 20 problems when invalid")
    problem_count: int = 0


class DatasetList(BaseModel):
    items: list[DatasetOut]


class MaskletOut(BaseModel):
    id: int
    phrase: str
    score: float
    segmentations: list[dict[str, Any] | None] = Field(
        description="one COCO RLE ({size: [h, w], counts}) per frame; null where absent")


class PredictionsPage(BaseModel):
    video: str
    frames: int
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    total: int = Field(description="masklets in all")
    offset: int
    limit: int
    masklets: list[MaskletOut]


class OverlayOut(BaseModel):
    name: str
    url: str
    size_bytes: int


class OverlayList(BaseModel):
    job_id: int
    overlays: list[OverlayOut]


class StreamEvent(BaseModel):
    """The `data:` JSON of one Server-Sent Event of GET /jobs/{id}/events; the SSE `event:`
    field is its kind and `id:` the event id (send it back as Last-Event-ID)."""
    job_id: int
    time: float = Field(description="unix seconds")
    state: JobState | None = Field(default=None, description="event: state")
    attempt: int | None = Field(default=None, description="event: state")
    reason_kind: str | None = Field(default=None, description="event: state")
    reason: str | None = Field(default=None, description="event: state")
    step: int | None = Field(default=None, description="event: progress, metrics, checkpoint")
    max_steps: int | None = Field(default=None, description="event: progress")
    eta_seconds: float | None = Field(default=None, description="event: progress")
    names: list[str] | None = Field(default=None, description="event: metrics (GET /jobs/{id}/metrics has the values)")
    count: int | None = Field(default=None, description="event: metrics")
    name: str | None = Field(default=None, description="event: checkpoint")
    size_bytes: int | None = Field(default=None, description="event: checkpoint")
    sha256: str | None = Field(default=None, description="event: checkpoint")
    for_state: str | None = Field(default=None, description="event: webhook (one delivery try)")
    status: int | None = Field(default=None, description="event: webhook: the receiver's HTTP status")
    outcome: str | None = Field(default=None, description="event: webhook: delivered | pending | failed")
