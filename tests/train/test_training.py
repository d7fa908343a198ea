"""The trainer as real processes: learning, exact resume after SIGTERM, truncated
checkpoints, and DDP over two gloo processes (tiny preset, CPU, one thread each)."""
from __future__ import annotations

import os
import re
import signal
import time

import pytest

from sam3_video import exit_codes
from sam3_video.checkpoint import list_checkpoints, load_latest
from tests.train.conftest import read_metrics, tiny_train_config, train_lines

CONTRACT_KEYS = {"step", "time", "epoch", "loss", "lr", "frames_per_s", "peak_mem_mb"}


def test_overfit_lowers_loss_by_half(launcher, runs_root):
    # One 2-frame video, two phrases, batch 2: every step sees the same batch (so no
    # random resize/pad: data.augment off).
    cfg = tiny_train_config(data={"train": "two-frames", "frames_per_clip": 2,
                                  "augment": {"enabled": False}},
                            optim={"lr": 2e-3, "weight_decay": 0.0},
                            schedule={"name": "cosine", "min_lr_ratio": 0.1},
                            max_steps=40, checkpoint_every=40, keep_last=1)
    run_dir = runs_root / "overfit"
    proc = launcher.run("train", cfg, run_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = train_lines(run_dir)
    assert [m["step"] for m in lines] == list(range(1, 41))
    first = lines[0]["loss"]
    last = sum(m["loss"] for m in lines[-3:]) / 3
    assert last <= 0.5 * first, f"loss {first:.1f} -> {last:.1f}"
    assert CONTRACT_KEYS <= set(lines[0])
    assert {"loss_bbox", "loss_giou", "loss_ce", "loss_mask", "loss_dice"} <= set(lines[0])
    assert all(m["frames_per_s"] > 0 and m["peak_mem_mb"] > 0 for m in lines)
    assert [p.name for _, p in list_checkpoints(run_dir / "checkpoints")] == ["step_0000040.pt"]
    assert any(f.name.startswith("events.out.tfevents") for f in (run_dir / "tb").iterdir())


def _wait_for_step(run_dir, step, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(m.get("step", 0) >= step and "loss" in m for m in read_metrics(run_dir)):
            return
        assert proc.poll() is None, "trainer exited before reaching the step"
        time.sleep(0.05)
    raise AssertionError(f"step {step} not reached in {timeout}s")


def test_sigterm_then_resume_matches_uninterrupted_run(launcher, runs_root):
    # Random strides, time reversal, shuffling over epochs and accumulation: all of it must
    # continue exactly where the stopped run left off.
    cfg = tiny_train_config(
        data={"frames_per_clip": 3, "frame_stride_max": 2, "random_reverse_time": True,
              "batch_size_per_gpu": 2},
        grad_accum_steps=2, max_steps=8, schedule={"name": "cosine", "warmup_steps": 2},
        checkpoint_every=100)
    whole = runs_root / "whole"
    proc = launcher.run("train", cfg, whole)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = {m["step"]: m["loss"] for m in train_lines(whole)}

    stopped = runs_root / "stopped"
    trainer = launcher.start("train", cfg, stopped, runs_root / "stopped.log")
    _wait_for_step(stopped, 2, trainer)
    trainer.send_signal(signal.SIGTERM)
    assert trainer.wait(timeout=120) == exit_codes.PREEMPTED, (runs_root / "stopped.log").read_text()[-3000:]
    saved = list_checkpoints(stopped / "checkpoints")
    assert len(saved) == 1 and 2 <= saved[0][0] < 8, saved
    stop_step = saved[0][0]

    proc = launcher.run("train", cfg, stopped)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"at step {stop_step}" in proc.stdout
    resumed = {m["step"]: m["loss"] for m in train_lines(stopped)}
    assert sorted(resumed) == list(range(1, 9))
    for step in range(stop_step + 1, 9):
        assert resumed[step] == pytest.approx(expected[step], abs=1e-5), step


def test_truncated_checkpoint_is_skipped(launcher, runs_root):
    cfg = tiny_train_config(max_steps=4, checkpoint_every=2)
    run_dir = runs_root / "truncated"
    proc = launcher.run("train", cfg, run_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first_losses = {m["step"]: m["loss"] for m in train_lines(run_dir)}
    ckpt_dir = run_dir / "checkpoints"
    newest = ckpt_dir / "step_0000004.pt"
    size = newest.stat().st_size
    with open(newest, "r+b") as f:  # as if the disk filled up mid-write
        f.truncate(size // 2)
    (ckpt_dir / "step_0000006.pt.tmp").write_bytes(b"half a checkpoint")

    proc = launcher.run("train", cfg, run_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert re.search(r"skipping checkpoint \S*step_0000004\.pt", output), output[-3000:]
    assert "step_0000002.pt at step 2" in output
    assert load_latest(ckpt_dir)["step"] == 4  # rewritten in full by the resumed run
    again = [m for m in train_lines(run_dir) if m["step"] == 4]
    assert len(again) == 2 and again[1]["loss"] == pytest.approx(first_losses[4], abs=1e-5)


def test_ddp_two_processes_keep_replicas_identical(launcher, runs_root):
    cfg = tiny_train_config(max_steps=3, checkpoint_every=3,
                            data={"val": "synthetic-val", "batch_size_per_gpu": 1})
    run_dir = runs_root / "ddp"
    proc = launcher.run("train", cfg, run_dir, nproc=2, timeout=240)  # a gloo hang times out
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    sums = dict(re.findall(r"rank (\d) parameter checksum ([-+0-9.eE]+)", proc.stdout))
    assert set(sums) == {"0", "1"}, proc.stdout[-2000:]
    assert sums["0"] == sums["1"]
    lines = train_lines(run_dir)
    assert [m["step"] for m in lines] == [1, 2, 3]  # rank 0 alone writes metrics
    # 2 ranks x 1 clip x 3 frames per step; an epoch of 6 clips takes 3 steps
    assert lines[-1]["epoch"] == pytest.approx(1.0)
    phases = [m["phase"] for m in read_metrics(run_dir) if "phase" in m]
    assert phases == ["base", "final"]
    assert os.path.exists(run_dir / "evaluation.json")
    assert [s for s, _ in list_checkpoints(run_dir / "checkpoints")] == [3]
