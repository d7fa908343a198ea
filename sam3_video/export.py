"""The export program: fine-tuned weights in the key layout of the upstream sam3.pt.

sam3.pt is a flat state dict of sam3's video model: `detector.*` (the image model,
Sam3Image) and `tracker.*` (the tracker). sam3.model_builder loads it by stripping
`detector.` into a Sam3Image (`_load_checkpoint`) or as a whole into the video model
(`build_sam3_video_model`, strict). Both layouts and the mapping between them are
sam3_video.weights'; a training checkpoint of either task exports the same way.

    python -m sam3_video.export CHECKPOINT OUT.pt [--base sam3.pt]

`--base` copies every tensor the checkpoint lacks (e.g. the tracker, or the detector's
tracker neck after detection-only training) from an upstream sam3.pt, so the result loads
strictly into build_sam3_video_model.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from sam3_video.config import ConfigError
from sam3_video.exit_codes import CONFIG_ERROR
from sam3_video.weights import DETECTOR_PREFIX, TRACKER_PREFIX, read_state_dict, to_upstream_layout


def fill_from_base(exported: dict, base: dict) -> list[str]:
    """Add the base tensors the export lacks; returns their keys. A shared key with a
    different shape means the checkpoint is of another preset than the base."""
    mismatched = [k for k in exported if k in base and base[k].shape != exported[k].shape]
    if mismatched:
        raise ConfigError([f"base: {len(mismatched)} tensors differ in shape from the checkpoint "
                           f"(another preset?), e.g. {', '.join(mismatched[:3])}"])
    added = [k for k in base if k not in exported]
    for key in added:
        exported[key] = base[key]
    return added


def export_checkpoint(checkpoint: Path, out: Path, base: Path | None = None) -> dict:
    """Write the upstream-layout weights of `checkpoint` to `out` (atomically)."""
    exported = to_upstream_layout(read_state_dict(checkpoint, "checkpoint"))
    added = fill_from_base(exported, read_state_dict(base, "base")) if base else []
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save(exported, tmp)
    os.replace(tmp, out)
    count = lambda prefix: sum(k.startswith(prefix) for k in exported)  # noqa: E731
    return {"detector": count(DETECTOR_PREFIX), "tracker": count(TRACKER_PREFIX),
            "from_base": len(added)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sam3_video.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="training checkpoint (step_XXXXXXX.pt)")
    parser.add_argument("out", type=Path, help="output file in the sam3.pt layout")
    parser.add_argument("--base", type=Path, default=None,
                        help="upstream sam3.pt supplying the tensors the checkpoint lacks")
    args = parser.parse_args(argv)
    try:
        counts = export_checkpoint(args.checkpoint, args.out, args.base)
    except ConfigError as err:
        print("export: " + "\n  ".join(err.problems), file=sys.stderr)
        return CONFIG_ERROR
    print(f"wrote {args.out}: {counts['detector']} detector.* and {counts['tracker']} tracker.* "
          f"tensors ({counts['from_base']} from the base)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
