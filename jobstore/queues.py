"""Which Celery queue serves a job: routing by GPU count keeps GPU sets whole, and jobs
that span several machines go only to workers that submit to a SLURM cluster."""

MULTINODE_PREFIX = "slurm-"


def queue_name(gpus: int, nodes: int = 1) -> str:
    """0 GPUs -> "cpu"; N GPUs -> "gpuN" (served by a worker that owns N GPUs);
    nodes > 1 -> "slurm-cpu", "slurm-gpuN" (N GPUs per node, served by SLURM workers)."""
    if gpus < 0:
        raise ValueError(f"gpus: must be >= 0, got {gpus}")
    if nodes < 1:
        raise ValueError(f"nodes: must be >= 1, got {nodes}")
    name = "cpu" if gpus == 0 else f"gpu{gpus}"
    return MULTINODE_PREFIX + name if nodes > 1 else name
