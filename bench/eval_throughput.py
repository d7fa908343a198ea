"""Evaluation throughput: frames per second of a detect evaluation, stage by stage.

Runs the same stages as `python -m sam3_video.evaluate` (tiny preset, random init, CPU by
default) on a synthetic dataset, side by side in one process:
  predict   the model over every (video, phrase) pair, all frames of a video in one clip
  link      per-frame detections -> masklets (IoU + Hungarian)
  metrics   sam3.eval's suite (mAP, phrase AP, TETA, HOTA, cgF1) + DAVIS J&F on the masklets
  frame AP  the per-frame COCO AP the detect task also reports
  metrics*  the metrics stage again on the ground truth as predictions (all confident)
and prints frames/s of each and of the whole evaluation. A "frame" is one video frame
scored for one noun phrase (the model runs once per (frame, phrase)).

    .venv/bin/python bench/eval_throughput.py [--videos 4] [--frames 8] [--repeats 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def timed_round_robin(stages: dict, repeats: int) -> dict[str, float]:
    """Median seconds per stage. Stages run in turn within each repeat (after one warm-up
    round), so load from other processes on a shared machine hits them all alike."""
    for fn in stages.values():
        fn()
    seconds = {name: [] for name in stages}
    for _ in range(repeats):
        for name, fn in stages.items():
            start = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in seconds.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from sam3_video import metrics
    from sam3_video.config import EvalConfig
    from sam3_video.data import write_synthetic
    from sam3_video.sampler import seed_everything
    from sam3_video.detector import evaluate as detect_eval
    from sam3_video.tasks import get_task

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synthetic-val"
        write_synthetic(root, videos=args.videos, frames=args.frames, seed=1)
        annotations = metrics.load_annotations(root)
        lengths = {v["id"]: len(v["file_names"]) for v in annotations["videos"]}
        frames = sum(lengths.values()) * len(annotations["categories"])

        cfg = EvalConfig(model={"preset": args.preset}, data={"dataset": "synthetic-val"},
                         gpus=0 if args.device == "cpu" else 1)
        task = get_task(cfg)
        seed_everything(0)
        model = task.build_model().to(torch.device(args.device)).eval()

        detections = task.predict(model, root)
        records = [d.to_json() for d in detections]
        masklets = metrics.link_dataset_detections(records, lengths, score_threshold=0.05)
        # A random-init model has no confident masklet, so HOTA/TETA have little to do;
        # the ground truth as predictions exercises the whole suite (not part of "total").
        perfect = metrics.predictions_from_ground_truth(root)
        t = timed_round_robin({
            "predict": lambda: task.predict(model, root),
            "link": lambda: metrics.link_dataset_detections(records, lengths, score_threshold=0.05),
            "metrics": lambda: metrics.score_predictions(root, masklets),
            "frame AP": lambda: detect_eval.score_frames(detections, root),
            "metrics*": lambda: metrics.score_predictions(root, perfect),
        }, args.repeats)

    main_stages = ["predict", "link", "metrics", "frame AP"]
    total = sum(t[name] for name in main_stages)
    print(f"preset {args.preset} on {args.device}, {torch.get_num_threads()} threads; "
          f"{args.videos} videos x {args.frames} frames x {len(annotations['categories'])} "
          f"phrases = {frames} frames; {len(detections)} detections -> {len(masklets)} masklets; "
          f"median of {args.repeats}")
    print(f"{'stage':<10} {'seconds':>8} {'frames/s':>9} {'share':>6}")
    for name in main_stages:
        print(f"{name:<10} {t[name]:8.3f} {frames / t[name]:9.1f} {t[name] / total:6.1%}")
    print(f"{'total':<10} {total:8.3f} {frames / total:9.1f}")
    print(f"{'metrics*':<10} {t['metrics*']:8.3f} {frames / t['metrics*']:9.1f}   "
          f"(* ground truth as predictions: every evaluator has work)")
    print(f"end-to-end / predict-only throughput ratio: {t['predict'] / total:.2f}")

if __name__ == "__main__":
    main()
