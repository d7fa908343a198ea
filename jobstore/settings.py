"""The one settings object of the service (API, worker and launcher read the same one).

Every field comes from an environment variable with the SAM3V_ prefix, e.g.
SAM3V_DATABASE_URL. DATA_ROOT, RUNS_ROOT and DATABASE_URL are accepted without the
prefix too, because the training program and ops habits use those plain names.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _comma_list(value):
    """'a, b' -> ['a', 'b']; lists pass through (so Settings(cors_origins=[...]) works)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAM3V_", extra="ignore")

    home: Path = Field(default=Path(".sam3v"), description="local stack home; default for the paths below")
    database_url: str = Field(default="", validation_alias=AliasChoices("SAM3V_DATABASE_URL", "DATABASE_URL", "database_url"))
    data_root: Path | None = Field(default=None, validation_alias=AliasChoices("SAM3V_DATA_ROOT", "DATA_ROOT", "data_root"))
    runs_root: Path | None = Field(default=None, validation_alias=AliasChoices("SAM3V_RUNS_ROOT", "RUNS_ROOT", "runs_root"))
    broker_url: str = "redis://localhost:6379/0"
    cors_origins: Annotated[list[str], NoDecode] = []
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    gpu_counts: Annotated[list[int], NoDecode] = Field(default=[0], description="GPU counts some worker queue serves")
    lease_seconds: int = Field(default=60, ge=1)
    max_attempts: int = Field(default=3, ge=1)
    # Longer than the longest job, or Redis redelivers a running task (see issue 4).
    visibility_timeout_s: int = Field(default=7 * 24 * 3600, ge=1)
    db_busy_timeout_ms: int = Field(default=30_000, ge=0)
    token_bytes: int = Field(default=32, ge=16, description="random bytes in a new API token")
    token_prefix: str = "sam3v_"
    token_default_ttl_s: int = Field(
        default=90 * 86400, ge=0,
        description="lifetime of a token from `sam3v tokens create` without --expires-in; 0: never expires")
    sse_poll_seconds: float = Field(default=0.5, gt=0)
    sse_keepalive_seconds: float = Field(default=15.0, gt=0)
    sse_max_streams_per_user: int = Field(
        default=8, ge=1, description="open GET /jobs/{id}/events streams per user and API "
                                     "process; one more gets 429")
    # The API server's connection limits (`python -m api`, api/server.py).
    api_read_timeout_s: float = Field(
        default=15.0, gt=0, description="a client must send a whole request (headers and "
        "body) within this of opening the connection or of the request's first byte")
    api_limit_concurrency: int = Field(
        default=256, ge=2, description="open connections + requests in flight per API "
                                       "process; past it the API answers 503")
    api_keep_alive_s: int = Field(default=5, ge=1, description="idle keep-alive connections close after this")
    # Worker-only; kept here so there is one settings object.
    worker_gpus: str = ""
    worker_id: str = ""
    worker_queue: str = Field(default="", description="overrides the queue derived from worker_gpus")
    # Between SIGTERM (the trainer checkpoints) and SIGKILL, on cancel and on worker stop.
    cancel_grace_s: float = Field(default=30.0, gt=0)
    # How the worker starts a trainer (worker/launchers): "local" runs torchrun on this
    # host; "slurm" submits it with sbatch to a SLURM cluster sharing RUNS_ROOT.
    launcher: Literal["local", "slurm"] = "local"
    slurm_partition: str = Field(default="", description="sbatch --partition; empty: the cluster's default")
    slurm_account: str = Field(default="", description="sbatch --account; empty: the user's default")
    slurm_time_limit: str = Field(default="", description="sbatch --time, e.g. 2-00:00:00; empty: the partition's")
    slurm_extra_options: str = Field(
        default="", description="more sbatch options, split like a shell does, e.g. "
                                "'--qos=normal --constraint=a100 --cpus-per-task=8'")
    slurm_poll_s: float = Field(default=2.0, gt=0, description="how often the worker asks "
                                "scontrol about its job")
    slurm_rdzv_port: int = Field(default=29400, ge=1024, le=65000,
                                 description="base of the c10d rendezvous port on a job's first "
                                             "node (plus SLURM job id mod 1000)")
    # The API's side: GPU counts (per node) that a SLURM worker's queue serves. Multi-node
    # jobs (nodes > 1) are accepted only for these; empty: no multi-node jobs.
    slurm_gpu_counts: Annotated[list[int], NoDecode] = Field(
        default=[], description="GPU counts per node some SLURM worker serves (multi-node jobs)")
    # Limits. POST /jobs and retry past the per-user limit get 429; the worker's
    # supervisor enforces the time limit and the run-directory quota (reason kinds
    # "time_limit" and "disk_quota", never retried).
    max_active_jobs_per_user: int = Field(
        default=20, ge=1, description="queued, running or cancelling jobs one user may have")
    admins_exempt_from_job_limit: bool = Field(
        default=True, description="admins may exceed max_active_jobs_per_user")
    job_time_limit_s: int = Field(
        default=7 * 24 * 3600, ge=1,
        description="running time of a job (its attempts since submit or the last retry); "
                    "a job's own time_limit_s may only lower it")
    run_dir_quota_bytes: int = Field(
        default=100 * 1024**3, ge=1,
        description="disk use of one run directory (checkpoints x keep_last, logs, metrics)")
    # Dataset uploads (PUT /datasets/{name}, into DATA_ROOT/uploads/<user id>/<name>) and
    # their validation, which runs once per dataset version off the request path.
    upload_max_bytes: int = Field(
        default=20 * 1024**3, ge=1, description="size of one uploaded archive as sent; past it 413")
    upload_max_extracted_bytes: int = Field(
        default=64 * 1024**3, ge=1, description="bytes one upload may extract to (counted "
                                                "while writing, so zip bombs stop here)")
    upload_max_files: int = Field(
        default=2_000_000, ge=1, description="members (files and folders) one upload may hold")
    dataset_validation_wait_s: float = Field(
        default=10.0, ge=0, description="POST /jobs waits this long for a dataset's first "
        "validation, then answers 409 with Retry-After")
    dataset_validation_threads: int = Field(
        default=2, ge=1, description="datasets validated at once per API process")

    # Webhooks (POST /jobs webhook_url): the API POSTs the job summary there on every
    # state change, signed with the secret. Off until both are set: an empty allowlist
    # means no host may be called, so a job spec cannot make the server reach into its
    # own network.
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default=[], description="host or host:port a webhook_url may name (comma-separated)")
    webhook_secret: str = Field(default="", description="HMAC-SHA256 key of X-Sam3v-Signature")
    webhook_max_attempts: int = Field(default=8, ge=1, description="deliveries tried per state change")
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    webhook_poll_s: float = Field(default=0.5, gt=0, description="how often due deliveries are sent")

    _split_lists = field_validator("cors_origins", "gpu_counts", "webhook_allowed_hosts",
                                   "slurm_gpu_counts", mode="before")(_comma_list)

    @model_validator(mode="after")
    def _defaults_under_home(self):
        home = self.home.expanduser()
        if not self.database_url:
            self.database_url = f"sqlite:///{(home / 'sam3v.db').resolve()}"
        if self.data_root is None:
            self.data_root = home / "data"
        if self.runs_root is None:
            self.runs_root = home / "runs"
        self.data_root = self.data_root.expanduser().resolve()
        self.runs_root = self.runs_root.expanduser().resolve()
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
