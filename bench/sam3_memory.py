"""Memory of one training step of the `sam3` preset on a CPU, per way of fine-tuning.

Each configuration runs in its own process: the real trainer (sam3_video.train.Trainer:
model, optimiser groups, data loader, one optimiser step of 1 clip x 2 frames, random
init, fp32). Its peak RSS is the child's ru_maxrss (os.wait4), which counts everything
the process ever held: the 840 M parameters, gradients and AdamW state of what trains,
the step's activations. Printed side by side, with ratios to the full fine-tune.

    .venv/bin/python bench/sam3_memory.py                         # 1008 px (~20 GB for full)
    .venv/bin/python bench/sam3_memory.py --image-size 336 --configs full frozen lora lora_ckpt
    .venv/bin/python bench/sam3_memory.py --device cuda --amp bf16 --longest-clip   # on a GPU

--longest-clip (CUDA) finds, per configuration, the longest clip (frames) one training step
fits in the device's memory: clips of 2, 4, 8, ... frames until one runs out of memory,
then bisection between the last fit and the first failure (at most --max-frames).

Configurations: full (everything trains), frozen (ViT trunk and text encoder frozen),
lora (rank-16 adapters on the default detect targets, base frozen), lora_ckpt (the same
plus activation checkpointing of the trunk). The first three keep trunk activations
(model.activation_checkpointing false), so each lever is seen on its own.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRUNK = "backbone.vision_backbone.trunk.*"
CONFIGS = {
    "full": {"activation_checkpointing": False},
    "frozen": {"activation_checkpointing": False,
               "freeze": {"text_encoder": True, "include": [TRUNK]}},
    "lora": {"activation_checkpointing": False, "lora": {"rank": 16, "alpha": 32}},
    "lora_ckpt": {"activation_checkpointing": True, "lora": {"rank": 16, "alpha": 32}},
}


def train_config(name: str, image_size: int, device: str, amp: str) -> dict:
    return {
        "task": "detect",
        "model": {"preset": "sam3", **CONFIGS[name]},
        # a positive clip every time: the same work in every configuration
        "data": {"train": "bench", "frames_per_clip": 2, "batch_size_per_gpu": 1,
                 "image_size": image_size, "negative_ratio": 0.0},
        "max_steps": 1, "gpus": 1 if device == "cuda" else 0, "seed": 0, "amp": amp,
    }


def child(config_file: str, run_dir: str, longest_clip: bool, max_frames: int) -> dict:
    """In the child: build the real trainer; time one optimiser step (or, with
    longest_clip, find the longest clip a step fits on the GPU)."""
    import torch

    from sam3_video import distributed
    from sam3_video.config import load_config_file
    from sam3_video.tasks import get_task
    from sam3_video.train import Trainer, endless

    cfg = load_config_file(config_file, "train")
    trainer = Trainer(cfg, get_task(cfg), distributed.init(use_cuda=cfg.gpus > 0), Path(run_dir))
    counts = {f"params_{k}": v for k, v in trainer.param_counts.items()}
    if longest_clip:
        return {"longest_clip": longest_fitting_clip(trainer, cfg, max_frames), **counts}
    batches = endless(trainer.loader, trainer.sampler)
    started = time.perf_counter()
    values = trainer.train_step(batches)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    trainer.close()
    return {"seconds": seconds, "loss": values["loss"], **counts}


def longest_fitting_clip(trainer, cfg, max_frames: int) -> int:
    """The most frames (<= max_frames) of one clip whose training step fits (0: not even 2)."""
    import torch

    from sam3_video.tasks import get_task

    def fits(frames: int) -> bool:
        longer = cfg.model_copy(update={"data": cfg.data.model_copy(update={"frames_per_clip": frames})})
        task = get_task(longer)
        batch = task.collate([task.train_dataset()[0]])
        try:
            trainer.train_step(iter([(1, batch)]))
            fitted = True
        except torch.cuda.OutOfMemoryError:
            fitted = False
        trainer.optimizer.zero_grad(set_to_none=True)
        del batch
        torch.cuda.empty_cache()
        print(f"{frames} frames: {'fits' if fitted else 'out of memory'}", file=sys.stderr, flush=True)
        return fitted

    ok: dict[int, bool] = {}
    good, bad = 0, None
    frames = 2
    while frames <= max_frames and bad is None:
        ok[frames] = fits(frames)
        good, bad = (frames, None) if ok[frames] else (good, frames)
        frames *= 2
    if bad is None:
        return good
    while bad - good > 1 and good:
        middle = (good + bad) // 2
        ok[middle] = fits(middle)
        good, bad = (middle, bad) if ok[middle] else (good, middle)
    return good


def run_child(name: str, args, data_root: Path, work: Path) -> dict:
    """One configuration in a fresh process; its peak RSS from os.wait4's rusage (that
    child's ru_maxrss alone, KiB on Linux)."""
    config = work / f"{name}.json"
    config.write_text(json.dumps(train_config(name, args.image_size, args.device, args.amp)))
    env = {**os.environ, "DATA_ROOT": str(data_root), "RUNS_ROOT": str(work)}
    out_path, err_path = work / f"{name}.out", work / f"{name}.err"
    mode = ["--longest-clip", "--max-frames", str(args.max_frames)] if args.longest_clip else []
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, __file__, "--child", str(config), str(work / name), *mode],
                                cwd=REPO, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{name}: the child failed ({proc.returncode}):\n"
                         f"{err_path.read_text()[-3000:]}")
    result = json.loads(out_path.read_text().strip().splitlines()[-1])
    return {**result, "peak_rss_gb": usage.ru_maxrss / 1024**2}


def longest_clip_table(results: dict[str, dict]) -> str:
    lines = ["| config | trainable params | longest clip (frames) |", "|---|---:|---:|"]
    lines += [f"| {name} | {r['params_trainable'] / 1e6:.1f} M | {r['longest_clip']} |"
              for name, r in results.items()]
    return "\n".join(lines)


def table(results: dict[str, dict]) -> str:
    full = results.get("full")
    lines = ["| config | trainable params | peak RSS (GB) | s / step | RSS vs full | time vs full |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        ratio = (lambda key: f"{r[key] / full[key]:.2f}") if full else (lambda key: "-")
        lines.append(f"| {name} | {r['params_trainable'] / 1e6:.1f} M | {r['peak_rss_gb']:.1f} | "
                     f"{r['seconds']:.1f} | {ratio('peak_rss_gb')} | {ratio('seconds')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=1008,
                        help="a multiple of 336 (the trunk's position table): 336, 672, 1008")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--amp", default="off", choices=["off", "bf16"])
    parser.add_argument("--longest-clip", action="store_true",
                        help="CUDA: the longest clip one step fits, per configuration")
    parser.add_argument("--max-frames", type=int, default=64)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, args.longest_clip, args.max_frames)), flush=True)
        return 0
    if args.longest_clip and args.device != "cuda":
        parser.error("--longest-clip needs --device cuda (a CPU has no memory limit to hit)")

    from sam3_video.data import write_synthetic

    results = {}
    with tempfile.TemporaryDirectory(prefix="sam3-memory-") as tmp:
        work = Path(tmp)
        frames = args.max_frames if args.longest_clip else 2
        write_synthetic(work / "data" / "bench", videos=1, frames=frames, seed=0)
        for name in args.configs:
            results[name] = r = run_child(name, args, work / "data", work)
            what = (f"longest clip {r['longest_clip']} frames" if args.longest_clip else
                    f"{r['peak_rss_gb']:.2f} GB peak RSS, {r['seconds']:.1f} s/step")
            print(f"{name}: {what}, {r['params_trainable']} of {r['params_total']} parameters "
                  "train", flush=True)
    print(f"\n$ {shlex.join(['.venv/bin/python', 'bench/sam3_memory.py', *(argv or sys.argv[1:])])}")
    clip = "1 clip" if args.longest_clip else "1 clip x 2 frames"
    print(f"sam3 preset, {args.image_size} px, {clip}, amp {args.amp}, {args.device}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}\n")
    print(longest_clip_table(results) if args.longest_clip else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
