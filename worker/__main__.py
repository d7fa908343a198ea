"""`python -m worker [extra celery worker options]`: a worker on the queue that matches
SAM3V_WORKER_GPUS ("" -> cpu, "0,1" -> gpu2), concurrency 1; a SLURM worker also serves
the multi-node queue (slurm-cpu, slurm-gpu2)."""
import sys

from jobstore.settings import get_settings
from worker.celery_app import app, worker_id, worker_queues


def main(argv: list[str]) -> None:
    settings = get_settings()
    app.worker_main(["worker", "-Q", ",".join(worker_queues(settings)), "--concurrency", "1",
                     "--hostname", f"{worker_id(settings)}@%h", "--loglevel", "INFO", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
