"""The evaluation program: a model over every clip of a dataset, predictions and metrics.

    python -m sam3_video.evaluate --config FILE --run-dir DIR
    torchrun --standalone --nproc_per_node=N -m sam3_video.evaluate --config FILE --run-dir DIR

FILE is an EvalConfig (bare, or inside a job.json envelope). model.init.path is a
checkpoint of ours, an upstream sam3.pt, or absent (the preset with random init). Writes
DIR/predictions.json (detect: the masklets linked from per-frame detections; other tasks:
one record per prediction), for detect DIR/overlays/<video>_vs_truth.png (prediction next
to ground truth, for the first two videos), DIR/results.json ({"metrics", "dataset", "weights",
"num_predictions", ...; detect adds "linking" and "video_metrics", every metric of
sam3_video.metrics}) and one DIR/metrics.jsonl line {"step": 0,
"eval/<metric>": ...}. Under torchrun, rank 0 does the work and the other ranks wait.
Exit codes as the trainer's (sam3_video.exit_codes).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

from sam3_video import distributed, exit_codes
from sam3_video.config import ConfigError, EvalConfig, data_path, load_config_file
from sam3_video.failures import report_failure
from sam3_video.metrics_log import MetricsLog
from sam3_video.overlays import write_comparison_sheets
from sam3_video.run_layout import OVERLAYS_DIR, PREDICTIONS_FILE, RESULTS_FILE, write_json_atomic
from sam3_video.sampler import seed_everything
from sam3_video.tasks import get_task


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sam3_video.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="EvalConfig JSON or job.json envelope")
    p.add_argument("--run-dir", required=True, help="where predictions and results go")
    return p.parse_args(argv)


def evaluate(cfg: EvalConfig, run_dir: Path, device: torch.device) -> dict[str, float]:
    task = get_task(cfg)
    root = data_path(cfg.data.dataset, "data.dataset")
    seed_everything(cfg.seed)  # random init (no model.init) is then reproducible
    model = task.build_model().to(device).eval()
    started = time.perf_counter()
    with torch.no_grad():
        predictions = task.predict(model, root)
    seconds = time.perf_counter() - started
    extra = {}
    if hasattr(task, "score_video"):  # detect: masklets linked from per-frame detections
        video = task.score_video(predictions, root)
        metrics, records = video.pop("metrics"), video.pop("predictions")
        extra = {"linking": video["linking"], "video_metrics": video}
    else:
        metrics, records = task.score(predictions, root), [p.to_json() for p in predictions]
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / PREDICTIONS_FILE, records)
    if hasattr(task, "score_video"):  # detect: masklets a person can compare with the truth
        write_comparison_sheets(run_dir / OVERLAYS_DIR, root, records)
    init = cfg.model.init
    write_json_atomic(run_dir / RESULTS_FILE, {
        "metrics": metrics,
        **extra,
        "task": cfg.task,
        "dataset": str(root),
        "weights": init.path if init is not None and init.path else None,
        "num_predictions": len(predictions),
        "predict_seconds": seconds,
        "config": cfg.model_dump(mode="json"),
    })
    log = MetricsLog(run_dir, tensorboard=False)
    log.write(0, {f"eval/{k}": v for k, v in metrics.items()})
    log.close()
    return metrics


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config_file(args.config, "eval")
        get_task(cfg).check()
    except ConfigError as err:
        return report_failure(err)
    if cfg.gpus > 0 and not torch.cuda.is_available():
        print(f"gpus={cfg.gpus} but no CUDA device is visible to this process", file=sys.stderr)
        return 1
    dist = distributed.init(use_cuda=cfg.gpus > 0)
    try:
        if dist.is_main:
            metrics = evaluate(cfg, Path(args.run_dir), dist.device)
            print(json.dumps(metrics), flush=True)
        distributed.barrier(dist)
        return exit_codes.OK
    except (ConfigError, RuntimeError, MemoryError) as err:  # e.g. weights that do not fit
        code = report_failure(err)
        if code is None:
            raise
        return code
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    sys.exit(main())
