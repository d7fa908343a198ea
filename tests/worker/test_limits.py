"""Row 4, the worker's half, with real processes: the supervisor stops a job that runs
past its time limit or whose run directory grows past the disk quota; the trainer gets
SIGTERM (it checkpoints) and the job fails with a named reason, once, not retried."""
from __future__ import annotations

import time

from sqlalchemy import select

import jobstore
from jobstore import broker
from jobstore.queues import queue_name
from tests.worker.conftest import tiny_train, wait_until

FINAL = ("succeeded", "failed", "cancelled")


def submit(stack, config: dict, time_limit_s: int | None = None) -> int:
    """What POST /jobs stores (a job's own time_limit_s included), then the message."""
    with jobstore.session_scope(stack.engine) as s:
        job = jobstore.create_job(s, owner_id=stack.owner_id, kind="train", name=None,
                                  config=config, gpus=0, queue=queue_name(0), priority=0,
                                  max_attempts=3, time_limit_s=time_limit_s)
    assert broker.enqueue(stack.settings, job.id, 0, engine=stack.engine)
    return job.id


def checkpoints(stack, job_id: int) -> list[jobstore.Checkpoint]:
    with jobstore.session_scope(stack.engine, write=False) as s:
        return list(s.scalars(select(jobstore.Checkpoint).where(jobstore.Checkpoint.job_id == job_id)))


def test_row4_job_time_limit(stack):
    # The limit counts from the claim and includes the trainer's start-up (imports, model
    # build), which takes from 15 s to over a minute on a busy 2-core machine.
    limit = 45
    stack.start_worker("w1")
    job_id = submit(stack, tiny_train(max_steps=5000, checkpoint_every=5000), time_limit_s=limit)
    job = stack.wait_state(job_id, FINAL, limit + 90)
    assert job.state == "failed" and job.reason_kind == "time_limit", (job.state, job.reason)
    assert "time limit exceeded: the job ran 4" in job.reason
    assert "its limit is 45s (the job's time_limit_s)" in job.reason
    assert f"POST /jobs/{job_id}/retry" in job.reason
    assert job.attempt == 1 and job.step < 5000
    # Stopped with SIGTERM (torchrun forwards it), not SIGKILL; a trainer that was already
    # training wrote its checkpoint, which the worker registered.
    log = (stack.run_dir(job_id) / "logs" / "attempt-1.log").read_text()
    assert "Received 15 death signal" in log
    if job.step:
        assert "stopped by SIGTERM" in log
        assert [c.step for c in checkpoints(stack, job_id)] == [job.step]
    assert not stack.trainer_processes(job_id)
    time.sleep(3)  # not retried: nothing puts it back in the queue
    assert stack.job(job_id).state == "failed" and stack.job(job_id).attempt == 1


def test_row4_disk_quota(stack):
    quota = 80 * 1000 * 1000  # a tiny checkpoint is ~50 MB: the second one crosses it
    stack.start_worker("w1", SAM3V_RUN_DIR_QUOTA_BYTES=str(quota))
    job_id = submit(stack, tiny_train(max_steps=400, checkpoint_every=1, keep_last=10))
    job = stack.wait_state(job_id, FINAL, 240)
    assert job.state == "failed" and job.reason_kind == "disk_quota", (job.state, job.reason)
    assert "disk quota exceeded: the run directory uses" in job.reason
    assert f"over the limit of 76.3 MiB ({quota} bytes) (SAM3V_RUN_DIR_QUOTA_BYTES)" in job.reason
    used = int(job.reason.split("uses ")[1].split("(")[1].split(" bytes")[0])
    assert used > quota
    assert job.attempt == 1 and job.step < 400
    log = (stack.run_dir(job_id) / "logs" / "attempt-1.log").read_text()
    assert "SIGTERM received" in log and "stopped by SIGTERM" in log
    # The checkpoint written on SIGTERM was registered before the job failed.
    assert max(c.step for c in checkpoints(stack, job_id)) == job.step
    assert not stack.trainer_processes(job_id)
    time.sleep(3)
    assert stack.job(job_id).state == "failed" and stack.job(job_id).attempt == 1
