"""The Celery app of the worker: settings for hours-long tasks, and two worker hooks.

    celery -A worker.celery_app worker -Q cpu --concurrency 1

Why these settings:
- acks_late + reject_on_worker_lost: a message is acknowledged only after the task
  returns, and goes back to the queue if the pool process dies, so no job is lost.
- prefetch 1, concurrency 1: one job per worker (= per GPU set); nothing waits in a
  busy worker's buffer while another worker is idle, and a free worker takes the
  highest-priority message waiting (jobstore.broker: one Redis list per priority).
- visibility_timeout: Redis re-delivers an unacknowledged message after this. It is
  meant to be longer than any job; if a job outlives it anyway, the re-delivered copy
  finds the job already claimed (running) and returns at once: the job runs once.
- Warm shutdown on SIGTERM (Celery's default): the ShutdownAndReaper step tells the
  running task to stop its trainer gracefully (SIGTERM -> checkpoint -> exit), the task
  puts the job back in the queue and returns, then the worker exits. A cold shutdown
  (SIGQUIT) waits worker_soft_shutdown_timeout first; the trainer then gets SIGTERM
  through its parent-death signal, and the reaper requeues the job when its lease runs out.
"""
from __future__ import annotations

import logging
import os
import signal
import socket

from celery import Celery, bootsteps

from jobstore import broker
from jobstore.queues import queue_name
from jobstore.settings import Settings, get_settings
from worker import reaper

log = logging.getLogger(__name__)


def worker_gpu_ids(settings: Settings) -> list[int]:
    """SAM3V_WORKER_GPUS "0,1" -> [0, 1]; "" -> [] (a CPU worker)."""
    text = settings.worker_gpus.strip()
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"SAM3V_WORKER_GPUS: expected comma-separated GPU indices, got {text!r}") from None


def worker_queue(settings: Settings) -> str:
    """The queue for this worker's GPU count; SAM3V_WORKER_QUEUE overrides it (tests run
    two CPU workers on two queues: the trainer refuses gpus > 0 without CUDA)."""
    return settings.worker_queue or queue_name(len(worker_gpu_ids(settings)))


def worker_queues(settings: Settings) -> list[str]:
    """Every queue the worker serves: its own, and for a SLURM worker (SAM3V_LAUNCHER=slurm,
    SAM3V_WORKER_GPUS = the GPUs per node its jobs get) the multi-node jobs' queue too."""
    queues = [worker_queue(settings)]
    if settings.launcher == "slurm":
        queues.append(queue_name(len(worker_gpu_ids(settings)), nodes=2))
    return queues


def worker_id(settings: Settings) -> str:
    return settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"


def cancel_grace_s(settings: Settings) -> float:
    """Seconds the trainer gets to checkpoint after SIGTERM (SAM3V_CANCEL_GRACE_S)."""
    return settings.cancel_grace_s


def make_app(settings: Settings) -> Celery:
    app = Celery("sam3v", broker=settings.broker_url, include=["worker.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        worker_max_tasks_per_child=None,
        # The producer's options (priority lists, unacked keys): jobstore.broker.
        broker_transport_options=broker.transport_options(settings.visibility_timeout_s),
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # wait out a Redis restart, however long
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_soft_shutdown_timeout=cancel_grace_s(settings) + 10,
        task_default_queue=worker_queue(settings),
    )
    app.steps["worker"].add(ShutdownAndReaper)
    return app


class ShutdownAndReaper(bootsteps.StartStopStep):
    """Runs in the worker's main process: the reaper on the event loop's timer, and on
    shutdown a SIGUSR2 to the pool process so its task stops the trainer gracefully."""

    requires = {"celery.worker.components:Timer", "celery.worker.components:Pool"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.timer_entry = None

    def start(self, worker):
        interval = reaper.interval_s(get_settings())
        self.timer_entry = worker.timer.call_repeatedly(interval, reaper.reap_once, priority=10)
        log.info("reaper every %.1f s", interval)

    def stop(self, worker):
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None
        try:
            pids = worker.pool.info.get("processes", [])
        except Exception:  # the pool never started
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGUSR2)
            except ProcessLookupError:
                pass

    terminate = stop


app = make_app(get_settings())
