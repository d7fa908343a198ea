"""Export fine-tuned weights in the key layout of the upstream sam3.pt.

sam3.pt is a flat state dict of sam3's video model: `detector.*` (the image model,
Sam3Image) and `tracker.*` (the tracker). sam3.model_builder loads it by stripping
`detector.` into a Sam3Image (`_load_checkpoint`) or as a whole into the video model
(`build_sam3_video_model`, strict). Our checkpoints hold {"model": VideoSam3.state_dict()}
(keys as in Sam3Image) and, for tracking, `tracker.*` keys already in the upstream layout.

    python -m sam3_video.export CHECKPOINT OUT.pt [--base sam3.pt]

`--base` copies every tensor the checkpoint lacks (e.g. the tracker, or the detector's
tracker neck after detection-only training) from an upstream sam3.pt, so the result loads
strictly into build_sam3_video_model.
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
from pathlib import Path

import torch

from sam3_video.exit_codes import CONFIG_ERROR

DETECTOR_PREFIX = "detector."
TRACKER_PREFIX = "tracker."
DDP_PREFIX = "module."


class ExportError(ValueError):
    """The checkpoint (or base file) cannot be exported; the message names the file."""


def export_state_dict(model_state: dict) -> dict:
    """Our state dict -> upstream layout: tracker keys stay `tracker.*`, every other key
    (the detector's) gets the `detector.` prefix. Keys already in the layout are kept."""
    out = {}
    for key, tensor in model_state.items():
        if key.startswith(DDP_PREFIX):  # a state dict taken from a DDP wrapper
            key = key[len(DDP_PREFIX):]
        if not key.startswith((TRACKER_PREFIX, DETECTOR_PREFIX)):
            key = DETECTOR_PREFIX + key
        out[key] = tensor.detach().cpu().contiguous()
    return out


def _load(path: Path) -> object:
    if not path.is_file():
        raise ExportError(f"{path}: file not found")
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            # Training checkpoints may carry non-tensor state (RNG states); the file was
            # named explicitly on the command line, so a full unpickle is the user's choice.
            return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # truncated or not a torch file
        raise ExportError(f"{path}: cannot be read ({type(err).__name__}: {err})") from None


def read_model_state(path: Path) -> dict:
    """The "model" state dict of a training checkpoint (or a bare state dict)."""
    blob = _load(path)
    if isinstance(blob, dict) and isinstance(blob.get("model"), dict):
        blob = blob["model"]
    if not isinstance(blob, dict) or not blob or not all(
            isinstance(v, torch.Tensor) for v in blob.values()):
        raise ExportError(f"{path}: holds no model state dict (expected {{'model': state_dict}})")
    return blob


def fill_from_base(exported: dict, base: dict) -> list[str]:
    """Add the base tensors the export lacks; returns their keys. A shared key with a
    different shape means the checkpoint is of another preset than the base."""
    mismatched = [k for k in exported if k in base and base[k].shape != exported[k].shape]
    if mismatched:
        raise ExportError(f"base: {len(mismatched)} tensors differ in shape from the checkpoint "
                          f"(another preset?), e.g. {', '.join(mismatched[:3])}")
    added = [k for k in base if k not in exported]
    for key in added:
        exported[key] = base[key]
    return added


def export_checkpoint(checkpoint: Path, out: Path, base: Path | None = None) -> dict:
    """Write the upstream-layout weights of `checkpoint` to `out` (atomically)."""
    exported = export_state_dict(read_model_state(checkpoint))
    added = fill_from_base(exported, read_model_state(base)) if base else []
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
    except ExportError as err:
        print(f"export: {err}", file=sys.stderr)
        return CONFIG_ERROR
    print(f"wrote {args.out}: {counts['detector']} detector.* and {counts['tracker']} tracker.* "
          f"tensors ({counts['from_base']} from the base)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
