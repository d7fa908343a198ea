"""Which Celery queue serves a job: routing by GPU count keeps GPU sets whole."""


def queue_name(gpus: int) -> str:
    """0 GPUs -> "cpu"; N GPUs -> "gpuN" (served by a worker that owns N GPUs)."""
    if gpus < 0:
        raise ValueError(f"gpus: must be >= 0, got {gpus}")
    return "cpu" if gpus == 0 else f"gpu{gpus}"
