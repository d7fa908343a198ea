"""Tracker training throughput (frames/s) of the tiny preset, per prompt type, side by side.

One optimiser step = forward over a batch of clips (backbone once over all frames, the
tracker frame by frame with memory), the multi-step multi-mask loss, backward, AdamW.
Variants run interleaved in one process so machine load hits them alike; the ratio to the
mask-prompt variant is the figure to compare across machines.

    .venv/bin/python bench/tracker_throughput.py [--steps 10] [--threads 2] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import torch

from sam3_video.data import write_synthetic
from sam3_video.lora import count_parameters
from sam3_video.tracker.build import build_track_model, set_trainable
from sam3_video.tracker.clips import TrackClips, collate_clips
from sam3_video.tracker.loss import MultiStepMultiMaskLoss
from sam3_video.tracker.prompts import sample_prompt_plan

VARIANTS = {  # name -> (prompt kind, train the ViT trunk too)
    "mask": ("mask", False),
    "box+corrections": ("box", False),
    "click+corrections": ("click", False),
    "mask, trunk trained": ("mask", True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--clips", type=int, default=2, help="clips per batch")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--data", default="/tmp/sam3v-bench-tracker")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)

    write_synthetic(args.data, videos=8, frames=8, seed=0)
    models = {}
    for name, (_, train_trunk) in VARIANTS.items():
        model = build_track_model(args.preset, args.image_size)
        set_trainable(model, train_trunk=train_trunk)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        models[name] = (model.to(device).train(), opt)
    image_size = next(iter(models.values()))[0].image_size
    clips = TrackClips(args.data, image_size, frames_per_clip=args.frames, max_objects=2)
    loss_fn = MultiStepMultiMaskLoss()
    times = {name: [] for name in VARIANTS}
    frames_per_step = None

    def step(name: str) -> float:
        nonlocal frames_per_step
        model, opt = models[name]
        batch = collate_clips([clips[i % len(clips)] for i in range(args.clips)]).to(device)
        frames_per_step = batch.num_frames
        plan = sample_prompt_plan(batch.masks, model.tracker.track_config, kind=VARIANTS[name][0])
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss = loss_fn(model(batch.images, list(batch.img_ids), batch.masks, plan), batch.masks)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for name in VARIANTS:  # warm-up
        step(name)
    for _ in range(args.steps):  # interleaved: every round runs each variant once
        for name in VARIANTS:
            times[name].append(step(name))

    model0 = models["mask"][0]
    results = {"preset": args.preset, "image_size": image_size, "device": str(device),
               "threads": args.threads, "clips_per_batch": args.clips, "frames_per_clip": args.frames,
               "frames_per_step": frames_per_step, "steps": args.steps,
               "parameters": count_parameters(model0)["total"],
               "trainable_parameters": count_parameters(model0)["trainable"], "variants": {}}
    base = frames_per_step / statistics.median(times["mask"])
    for name, ts in times.items():
        fps = frames_per_step / statistics.median(ts)
        results["variants"][name] = {"median_step_s": round(statistics.median(ts), 4),
                                     "frames_per_s": round(fps, 2), "ratio_to_mask": round(fps / base, 3)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
