"""Fine-tune vs base (issue 12): does our default recipe make a good model better on new data?

No real sam3.pt exists on a CPU box, so a stand-in base is made: a tiny detector trained from
random init on the synthetic shapes (square, circle, triangle). It is then fine-tuned on a
new distribution, the same colours on new shapes under new phrases (diamond, cross, ring,
bar; `write_synthetic(..., phrase_set="novel")`), once with the default recipe (no optim or
schedule set: the preset's defaults) and once with a deliberately bad one (every rate x100).
Each fine-tune scores the held-out novel clips before (base) and after (final) training.

    .venv/bin/python bench/fine_tune_vs_base.py [--out DIR]

Prints the base's own held-out metrics and, per recipe, base -> final (delta) of the four
headline video metrics (mask AP, HOTA, cgF1, J&F). Runs the real trainer as a subprocess,
one thread, as the worker does.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sam3_video.data import write_synthetic  # noqa: E402

HEADLINE = ("mask_ap", "hota", "cgf1", "j_and_f")
DATASETS = {  # name -> write_synthetic arguments
    "shapes": dict(videos=8, frames=8, seed=0),
    "shapes-val": dict(videos=4, frames=8, seed=1),
    "novel": dict(videos=8, frames=8, seed=20, phrase_set="novel"),
    "novel-val": dict(videos=4, frames=8, seed=21, phrase_set="novel"),
}


def base_config() -> dict:
    """The stand-in base: examples/train_tiny.json's recipe, longer."""
    cfg = json.loads((REPO / "examples" / "train_tiny.json").read_text())
    cfg["data"].update(train="shapes", val="shapes-val")
    cfg.update(max_steps=BASE_STEPS, checkpoint_every=BASE_STEPS, keep_last=1)
    return cfg


BASE_STEPS = 200
FINE_TUNE_STEPS = 100


def fine_tune_config(init: Path, optim: dict | None = None) -> dict:
    """Fine-tune `init` on the novel shapes with the default recipe (`optim` None) or `optim`."""
    cfg = {"task": "detect", "model": {"preset": "tiny", "init": {"path": str(init)}},
           "data": {"train": "novel", "val": "novel-val", "frames_per_clip": 4,
                    "batch_size_per_gpu": 2},
           "max_steps": FINE_TUNE_STEPS, "checkpoint_every": FINE_TUNE_STEPS, "keep_last": 1,
           "seed": 0, "gpus": 0}
    if optim is not None:
        cfg["optim"] = optim
    return cfg


BAD_OPTIM = {"lr": 1e-2, "vision_lr": 1e-2, "language_lr": 1e-2}  # the tiny default 1e-4, x100


def train(cfg: dict, run_dir: Path, data_root: Path, runs_root: Path) -> dict:
    """Run the trainer; returns its evaluation.json ({"base", "final"})."""
    config = runs_root / f"{run_dir.name}.json"
    config.write_text(json.dumps(cfg))
    env = dict(os.environ, DATA_ROOT=str(data_root), RUNS_ROOT=str(runs_root),
               OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "sam3_video.train", "--config", str(config),
                           "--run-dir", str(run_dir)], env=env, cwd=REPO,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"training {run_dir.name} failed:\n{proc.stderr[-3000:]}")
    return json.loads((run_dir / "evaluation.json").read_text())


def row(name: str, evaluation: dict) -> str:
    base, final = evaluation["base"], evaluation["final"]
    cells = [f"{base[k]:.3f} -> {final[k]:.3f} ({final[k] - base[k]:+.3f})" for k in HEADLINE]
    return f"| {name} | " + " | ".join(cells) + " |"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", help="work directory (default: a temporary one)")
    args = p.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="fine-tune-vs-base-"))
    data_root, runs_root = out / "data", out / "runs"
    runs_root.mkdir(parents=True, exist_ok=True)
    for name, kwargs in DATASETS.items():
        if not (data_root / name / "annotations.json").exists():
            write_synthetic(data_root / name, **kwargs)

    base = train(base_config(), runs_root / "base", data_root, runs_root)
    checkpoint = runs_root / "base" / "checkpoints" / f"step_{BASE_STEPS:07d}.pt"
    default = train(fine_tune_config(checkpoint), runs_root / "default", data_root, runs_root)
    bad = train(fine_tune_config(checkpoint, BAD_OPTIM), runs_root / "bad", data_root, runs_root)

    print(f"base: {BASE_STEPS} steps from random init on 'shapes'; fine-tunes: "
          f"{FINE_TUNE_STEPS} steps on 'novel', scored on 'novel-val'")
    print("| run | " + " | ".join(HEADLINE) + " |")
    print("|---|" + "---|" * len(HEADLINE))
    print(row("base on its own held-out shapes (random init -> base)", base))
    print(row("fine-tune, default recipe", default))
    print(row("fine-tune, every rate x100", bad))
    return 0


if __name__ == "__main__":
    sys.exit(main())
