"""Evaluation throughput: frames per second of a detect evaluation, stage by stage.

Runs the same stages as `python -m sam3_video.evaluate` (tiny preset, random init, CPU by
default) on a synthetic dataset, side by side in one process:
  predict   the model over every (video, phrase) pair, all frames of a video in one clip
  link      per-frame detections -> masklets (IoU + Hungarian)
  metrics   sam3.eval's suite (mAP, phrase AP, TETA, HOTA, cgF1) + DAVIS J&F on the masklets
  frame AP  the per-frame COCO AP the detect task also reports
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


def timed(fn, repeats: int):
    """(result of the last call, median seconds) over `repeats` calls after one warm-up."""
    result = fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return result, statistics.median(seconds)


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

    from sam3_video import video_eval
    from sam3_video.config import EvalConfig
    from sam3_video.data import write_synthetic
    from sam3_video.sampler import seed_everything
    from sam3_video.tasks import detect_eval, get_task

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synthetic-val"
        write_synthetic(root, videos=args.videos, frames=args.frames, seed=1)
        annotations = video_eval.load_annotations(root)
        lengths = {v["id"]: len(v["file_names"]) for v in annotations["videos"]}
        frames = sum(lengths.values()) * len(annotations["categories"])

        cfg = EvalConfig(model={"preset": args.preset}, data={"dataset": "synthetic-val"},
                         gpus=0 if args.device == "cpu" else 1)
        task = get_task(cfg)
        seed_everything(0)
        model = task.build_model().to(torch.device(args.device)).eval()

        detections, t_predict = timed(lambda: task.predict(model, root), args.repeats)
        records = [d.to_json() for d in detections]
        masklets, t_link = timed(
            lambda: video_eval.link_dataset_detections(records, lengths, score_threshold=0.05),
            args.repeats)
        _, t_metrics = timed(lambda: video_eval.score_predictions(root, masklets), args.repeats)
        _, t_frame_ap = timed(lambda: detect_eval.score(detections, root), args.repeats)

    total = t_predict + t_link + t_metrics + t_frame_ap
    print(f"preset {args.preset} on {args.device}, {torch.get_num_threads()} threads; "
          f"{args.videos} videos x {args.frames} frames x {len(annotations['categories'])} "
          f"phrases = {frames} frames; {len(detections)} detections -> {len(masklets)} masklets; "
          f"median of {args.repeats}")
    print(f"{'stage':<10} {'seconds':>8} {'frames/s':>9} {'share':>6}")
    for name, seconds in [("predict", t_predict), ("link", t_link), ("metrics", t_metrics),
                          ("frame AP", t_frame_ap), ("total", total)]:
        print(f"{name:<10} {seconds:8.3f} {frames / seconds:9.1f} {seconds / total:6.1%}")
    print(f"end-to-end / predict-only throughput ratio: {t_predict / total:.2f}")


if __name__ == "__main__":
    main()
