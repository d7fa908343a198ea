"""Row 11, end to end: the trainer's checkpoint directory is a real full filesystem (a
1 MiB tmpfs; a tiny checkpoint is ~50 MB). The write fails with ENOSPC, its .tmp file is
removed, the trainer exits DISK_FULL and the job fails once with kind disk_full: it is
not retried (the next attempt would land on the same full disk)."""
from __future__ import annotations

import time

import jobstore
from sam3_video.run_layout import CHECKPOINT_DIR
from tests.support.tmpfs import tmpfs  # noqa: F401 (fixture)
from tests.worker.conftest import tiny_train

FINAL = ("succeeded", "failed", "cancelled")


def test_row11_disk_full_checkpoint_fails_once_as_disk_full(stack, tmpfs):
    job_id = stack.submit(tiny_train(max_steps=20, checkpoint_every=2))
    checkpoints = tmpfs.mount(stack.run_dir(job_id) / CHECKPOINT_DIR, size="1m")
    stack.start_worker("w1")
    job = stack.wait_state(job_id, FINAL, 240)
    assert job.state == "failed" and job.reason_kind == "disk_full", (job.state, job.reason)
    assert job.reason.startswith("disk full: no space left for the run directory (ENOSPC)")
    assert f"POST /jobs/{job_id}/retry" in job.reason and "exit code 74" in job.reason
    assert "No space left on device" in job.reason  # the trainer's own line, from its log
    assert job.attempt == 1
    assert list(checkpoints.iterdir()) == []  # no step_0000002.pt.tmp left behind
    with jobstore.session_scope(stack.engine, write=False) as s:
        assert s.query(jobstore.Checkpoint).filter_by(job_id=job_id).count() == 0
    time.sleep(3)  # not retried
    assert stack.job(job_id).state == "failed" and stack.job(job_id).attempt == 1
    assert not stack.trainer_processes(job_id)
