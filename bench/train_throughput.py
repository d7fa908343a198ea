"""Training throughput: the batched multi-frame forward vs the per-frame reference loop.

Same model, same clips, forward + backward of the detection loss, T frames per clip.
The two paths alternate within each repetition (ABBA order) so machine load hits both
alike; the speed-up is the median over repetitions of the per-repetition time ratio.

    .venv/bin/python bench/train_throughput.py                      # tiny preset, CPU
    .venv/bin/python bench/train_throughput.py --device cuda --preset sam3 --amp bf16 \
        --frames 4 8 --peak-tflops 989                                  # on a GPU
"""
from __future__ import annotations

import argparse
import contextlib
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from sam3_video.backbone.presets import preset_dims
from sam3_video.config import ModelConfig
from sam3_video.data import collate, make_video_dataset, move_to, write_synthetic
from sam3_video.detector.build import build_model
from sam3_video.detector.loss import build_detection_loss




def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_step(model, forward, loss_fn, batch, autocast) -> float:
    model.zero_grad(set_to_none=True)
    with autocast():
        loss = loss_fn(forward(batch), batch)["core_loss"]
    loss.backward()
    return loss.item()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny", choices=["tiny", "sam3"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="off", choices=["off", "bf16"])
    parser.add_argument("--frames", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--clips", type=int, default=2, help="clips per batch")
    parser.add_argument("--reps", type=int, default=6, help="timed steps per path and T")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, default=None, help="for MFU (GPU)")
    parser.add_argument("--out", type=Path, default=None, help="append the markdown table here")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.amp == "bf16" \
        else contextlib.nullcontext
    torch.manual_seed(0)
    model = build_model(ModelConfig(preset=args.preset)).to(device)
    loss_fn = build_detection_loss(preset_dims(args.preset).num_queries, distributed=False)
    image_size = preset_dims(args.preset).image_size

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic(tmp, videos=args.clips, frames=max(args.frames), seed=0)
        for frames in args.frames:
            dataset = make_video_dataset(tmp, image_size=image_size, frames_per_clip=frames)
            dataset.set_curr_epoch(0)
            batch = move_to(collate([dataset[i] for i in range(args.clips)]), device)
            paths = {"batched": model.forward, "per_frame": model.forward_per_frame}
            losses = {name: train_step(model, fwd, loss_fn, batch, autocast)  # warm-up
                      for name, fwd in paths.items()}
            with FlopCounterMode(display=False) as flops:
                train_step(model, model.forward, loss_fn, batch, autocast)
            times = {name: [] for name in paths}
            for rep in range(args.reps):
                order = list(paths) if rep % 2 == 0 else list(paths)[::-1]
                for name in order:
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                    sync(device)
                    start = time.perf_counter()
                    train_step(model, paths[name], loss_fn, batch, autocast)
                    sync(device)
                    times[name].append(time.perf_counter() - start)
            n = args.clips * frames
            median = {name: statistics.median(t) for name, t in times.items()}
            row = {
                "T": frames, "frames": n,
                "batched_fps": n / median["batched"], "per_frame_fps": n / median["per_frame"],
                # per repetition the two paths ran back to back under the same load
                "speedup": statistics.median(p / b for p, b in zip(times["per_frame"], times["batched"])),
                "loss_diff": abs(losses["batched"] - losses["per_frame"]),
                "tflops_per_s": flops.get_total_flops() / median["batched"] / 1e12,
            }
            if device.type == "cuda":
                row["peak_mem_mb_per_frame"] = torch.cuda.max_memory_allocated(device) / 2**20 / n
            if args.peak_tflops:
                row["mfu"] = row["tflops_per_s"] / args.peak_tflops
            rows.append(row)
            print(row, flush=True)

    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/train_throughput.py",
                                                 *(argv if argv is not None else sys.argv[1:])])
    table = render(rows, args, command)
    print(table)
    if args.out:
        with open(args.out, "a") as f:
            f.write(table + "\n")
    return 0


def render(rows, args, command) -> str:
    extra = [k for k in ("peak_mem_mb_per_frame", "mfu") if k in rows[0]]
    head = ["T", "frames/step", "batched frames/s", "per-frame frames/s", "speed-up (median of per-rep ratios)",
            "achieved TFLOP/s (batched)", "loss diff (abs)", *extra]
    lines = [f"`{command}`", "",
             f"preset {args.preset}, device {args.device}, amp {args.amp}, {args.clips} clips x T "
             f"frames per step, forward+backward, median of {args.reps} interleaved steps, "
             f"{args.threads} threads", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["T"], r["frames"], f"{r['batched_fps']:.2f}", f"{r['per_frame_fps']:.2f}",
                 f"{r['speedup']:.2f}x", f"{r['tflops_per_s']:.4f}", f"{r['loss_diff']:.1e}"]
        cells += [f"{r[k]:.1f}" if k != "mfu" else f"{r[k]:.1%}" for k in extra]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
