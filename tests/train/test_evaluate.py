"""The evaluation program: predictions and metrics of a checkpoint over every clip."""
from __future__ import annotations

import json

import pytest

from tests.train.conftest import REPO, read_metrics, tiny_train_config


def test_eval_of_a_checkpoint_matches_the_trainers_final_evaluation(launcher, runs_root, data_root):
    train_dir = runs_root / "job-1"
    cfg = tiny_train_config(max_steps=2, checkpoint_every=2,
                            data={"val": "synthetic-val", "batch_size_per_gpu": 1})
    proc = launcher.run("train", cfg, train_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = json.loads((train_dir / "evaluation.json").read_text())["final"]

    eval_dir = runs_root / "job-2"
    envelope = {"kind": "eval", "job_id": 2, "attempt": 1, "config": {
        "task": "detect", "model": {"preset": "tiny", "init": {
            "path": str(train_dir / "checkpoints" / "step_0000002.pt")}},
        "data": {"dataset": str(data_root / "synthetic-val")}, "gpus": 0}}
    proc = launcher.run("evaluate", envelope, eval_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]

    results = json.loads((eval_dir / "results.json").read_text())
    predictions = json.loads((eval_dir / "predictions.json").read_text())
    assert results["num_predictions"] > 0  # per-frame detections before linking
    assert isinstance(predictions, list)  # masklets over score_threshold (none this early)
    assert all(p["video_id"] == 1 for p in predictions)  # the val set has one video
    lines = read_metrics(eval_dir)
    assert len(lines) == 1 and lines[0]["step"] == 0
    metrics = {k[len("eval/"):]: v for k, v in lines[0].items() if k.startswith("eval/")}
    assert metrics == results["metrics"]
    assert {"mask_ap", "frame_mask_ap", "frame_box_ap"} <= set(metrics)
    for name, value in metrics.items():  # same weights, same clips: same numbers
        assert value == pytest.approx(final[name], abs=1e-6), name

    # The final evaluation drew the same prediction-vs-truth sheet the eval job drew.
    drawn = sorted(p.name for p in (train_dir / "overlays").iterdir())
    assert drawn == ["video_000_vs_truth.png"], drawn
    assert sorted(p.name for p in (eval_dir / "overlays").iterdir()) == drawn
    assert ((train_dir / "overlays" / drawn[0]).read_bytes()
            == (eval_dir / "overlays" / drawn[0]).read_bytes())


def test_eval_example_with_random_init(launcher, runs_root):
    cfg = json.loads((REPO / "examples" / "eval_tiny.json").read_text())
    eval_dir = runs_root / "random"
    proc = launcher.run("evaluate", cfg, eval_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((eval_dir / "results.json").read_text())
    assert results["weights"] is None
    assert all(0.0 <= v <= 1.0 for k, v in results["metrics"].items() if "ap" in k)
