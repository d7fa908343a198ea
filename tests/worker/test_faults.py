"""Faults with real processes: a killed worker, a redelivered message, Redis restarts,
cancel, a stopping worker, two queues at once, a config error, a crashed trainer."""
from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import Counter

import psutil
import pytest
from sqlalchemy import select

import jobstore
from tests.worker.conftest import tiny_train, wait_until

FINAL = ("succeeded", "failed", "cancelled")


def training_steps(stack, job_id: int) -> list[int]:
    """Steps of every training line in metrics.jsonl, in file order (all attempts)."""
    lines = (stack.run_dir(job_id) / "metrics.jsonl").read_text().splitlines()
    return [r["step"] for r in map(json.loads, lines) if "loss" in r]


def stored_loss(stack, job_id: int) -> dict[int, int]:
    """step -> attempt that wrote the stored 'loss' value."""
    with jobstore.session_scope(stack.engine, write=False) as s:
        rows = s.execute(select(jobstore.Metric.step, jobstore.Metric.attempt)
                         .where(jobstore.Metric.job_id == job_id, jobstore.Metric.name == "loss"))
        return dict(rows.all())


def checkpoint_steps(stack, job_id: int) -> set[int]:
    with jobstore.session_scope(stack.engine, write=False) as s:
        return set(s.scalars(select(jobstore.Checkpoint.step).where(jobstore.Checkpoint.job_id == job_id)))


def resumed_step(stack, job_id: int, attempt: int) -> int:
    text = (stack.run_dir(job_id) / "logs" / f"attempt-{attempt}.log").read_text()
    return int(re.search(r"resumed from \S+ at step (\d+)", text).group(1))


@pytest.mark.slow
def test_killed_worker_resumes_from_last_checkpoint(stack):
    worker = stack.start_worker("w1")
    job_id = stack.submit(tiny_train(max_steps=40, checkpoint_every=4, keep_last=20))
    wait_until(lambda: checkpoint_steps(stack, job_id) and stack.job(job_id).step >= 6, 180,
               "a registered checkpoint and step >= 6")
    os.killpg(worker.pid, signal.SIGKILL)  # the whole worker: main process and pool child
    worker.wait(timeout=10)
    # The orphaned trainer got SIGTERM (parent-death signal): it checkpoints and exits.
    wait_until(lambda: not stack.trainer_processes(job_id), 60, "the orphaned trainer to exit")

    stack.start_worker("w2")
    job = stack.wait_state(job_id, FINAL, 240)
    assert job.state == "succeeded", job.reason
    assert job.attempt == 2
    resume = resumed_step(stack, job_id, 2)
    assert resume >= 6

    counts = Counter(training_steps(stack, job_id))
    assert sorted(counts) == list(range(1, 41))
    assert all(counts[s] == 1 for s in range(1, resume + 1)), counts  # nothing before it twice
    stored = stored_loss(stack, job_id)
    assert sorted(stored) == list(range(1, 41))
    assert {stored[s] for s in range(1, resume + 1)} == {1}
    assert {stored[s] for s in range(resume + 1, 41)} == {2}


def test_job_outliving_the_visibility_timeout_runs_once(stack):
    fast_redelivery = {"SAM3V_VISIBILITY_TIMEOUT_S": "2"}
    stack.start_worker("w1", **fast_redelivery)
    job_id = stack.submit(tiny_train(max_steps=12))
    wait_until(lambda: stack.job(job_id).state == "running", 120, "the job to start")
    time.sleep(3)  # past the visibility timeout: the message is now redeliverable
    stack.start_worker("w2", **fast_redelivery)  # restores unacked messages on start
    job = stack.wait_state(job_id, FINAL, 180)
    assert job.state == "succeeded", job.reason
    wait_until(lambda: "duplicate delivery" in stack.worker_log("w1") + stack.worker_log("w2"),
               30, "the redelivered copy to arrive")
    logs = stack.worker_log("w1") + stack.worker_log("w2")
    assert job.attempt == 1
    assert sorted(p.name for p in (stack.run_dir(job_id) / "logs").iterdir()) == ["attempt-1.log"]
    assert training_steps(stack, job_id) == list(range(1, 13))
    assert logs.count("claimed") == 1


@pytest.mark.slow
@pytest.mark.parametrize("keep_data", [True, False], ids=["with-data", "wiped"])
def test_redis_restart_with_jobs_queued(stack, keep_data):
    stack.start_worker("w1")
    first = stack.submit(tiny_train(max_steps=8))
    second = stack.submit(tiny_train(max_steps=2))
    wait_until(lambda: stack.job(first).state == "running", 120, "the first job to start")
    stack.redis.stop(keep_data=keep_data)  # the second job's message waits in Redis
    time.sleep(2)
    stack.redis.start()
    for job_id in (first, second):
        job = stack.wait_state(job_id, FINAL, 240)
        assert job.state == "succeeded", (job_id, job.reason)
        assert job.attempt == 1
    if not keep_data:  # the lost message came back from the job store, via the reaper
        assert re.search(r"'resent': [1-9]", stack.worker_log("w1"))


def test_cancel_stops_every_process_of_the_job(stack):
    stack.start_worker("w1")
    job_id = stack.submit(tiny_train(max_steps=500, checkpoint_every=1000))
    wait_until(lambda: stack.job(job_id).step >= 2, 180, "training to start")
    procs = stack.trainer_processes(job_id)
    [launcher] = [p for p in procs if "torch.distributed.run" in " ".join(p.cmdline())]
    [rank] = [p for p in procs if p is not launcher]
    # torchrun starts the rank in a session of its own: killing torchrun's group misses it.
    assert os.getsid(rank.pid) == rank.pid != os.getpgid(launcher.pid)

    jobstore.cancel_job(job_id, engine=stack.engine)  # what POST /jobs/{id}/cancel does
    started = time.monotonic()
    job = stack.wait_state(job_id, ("cancelled",), 15)
    wait_until(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                               for p in procs), 15 - (time.monotonic() - started),
               "every process of the job to exit")
    assert job.reason_kind == "cancelled"
    assert not stack.trainer_processes(job_id)
    assert "SIGTERM received" in (stack.run_dir(job_id) / "logs" / "attempt-1.log").read_text()


@pytest.mark.slow
def test_sigterm_to_worker_checkpoints_requeues_and_resumes(stack):
    worker = stack.start_worker("w1")
    job_id = stack.submit(tiny_train(max_steps=40, checkpoint_every=100))
    wait_until(lambda: stack.job(job_id).step >= 3, 180, "training to start")
    worker.send_signal(signal.SIGTERM)  # docker stop
    assert worker.wait(timeout=60) is not None
    job = stack.job(job_id)
    assert job.state == "queued" and job.attempt == 1  # handed back, not failed
    stopped_at = checkpoint_steps(stack, job_id)
    assert len(stopped_at) == 1  # the checkpoint written on SIGTERM (none was due before)

    stack.start_worker("w2")
    job = stack.wait_state(job_id, FINAL, 240)
    assert job.state == "succeeded", job.reason
    assert job.attempt == 2
    assert resumed_step(stack, job_id, 2) == stopped_at.pop()


def test_two_jobs_on_two_queues_at_once(stack):
    # Two CPU workers on two queues (SAM3V_WORKER_QUEUE): this host has no GPU, and the
    # trainer refuses gpus > 0 without CUDA, so GPU sets cannot be faked honestly.
    stack.start_worker("worker-a", queue="cpu")
    stack.start_worker("worker-b", queue="cpu-b")
    job_a = stack.submit(tiny_train(max_steps=50))
    job_b = stack.submit(tiny_train(max_steps=50), queue="cpu-b")

    def both_training():
        ranks = {}
        for job_id in (job_a, job_b):
            found = [p for p in stack.trainer_processes(job_id)
                     if "torch.distributed.run" not in " ".join(p.cmdline())]
            if not found or stack.job(job_id).step < 1:
                return None
            ranks[job_id] = found[0].environ()
        return ranks
    env = wait_until(both_training, 180, "both jobs training at the same time")
    assert env[job_a]["MASTER_PORT"] != env[job_b]["MASTER_PORT"]
    assert env[job_a]["CUDA_VISIBLE_DEVICES"] == env[job_b]["CUDA_VISIBLE_DEVICES"] == ""
    for job_id in (job_a, job_b):
        job = stack.wait_state(job_id, FINAL, 240)
        assert job.state == "succeeded", job.reason
    assert stack.job(job_a).worker_id == "worker-a"
    assert stack.job(job_b).worker_id == "worker-b"


def test_config_error_fails_once_without_retry(stack):
    stack.start_worker("w1")
    bad = tiny_train()
    bad["data"]["train"] = "no-such-dataset"
    job_id = stack.submit(bad)
    job = stack.wait_state(job_id, FINAL, 120)
    assert job.state == "failed" and job.reason_kind == "config"
    assert "no-such-dataset" in job.reason
    assert job.attempt == 1


@pytest.mark.slow
def test_crashed_trainer_is_retried_and_resumes(stack):
    stack.start_worker("w1")
    job_id = stack.submit(tiny_train(max_steps=16, checkpoint_every=2, keep_last=10))
    wait_until(lambda: len(checkpoint_steps(stack, job_id)) >= 2, 180, "two checkpoints")
    [rank] = [p for p in stack.trainer_processes(job_id)
              if "torch.distributed.run" not in " ".join(p.cmdline())]
    rank.kill()  # a crash: torchrun reports exitcode -9, an infrastructure failure
    job = stack.wait_state(job_id, FINAL, 240)
    assert job.state == "succeeded", job.reason
    assert job.attempt == 2
    with jobstore.session_scope(stack.engine, write=False) as s:
        [first] = s.scalars(select(jobstore.Attempt).where(jobstore.Attempt.job_id == job_id,
                                                        jobstore.Attempt.number == 1))
        assert first.outcome == "requeued" and "exit code -9" in first.reason
    assert resumed_step(stack, job_id, 2) >= 4
