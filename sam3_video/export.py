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

A LoRA job's checkpoint (model.lora, detect or track) is merged first: its base is rebuilt
from the model.init it records and the adapters are folded into the base weights, so the
file has upstream keys only.

sam3.pt is the model at its preset's image size (sam3: 1008 px). A run at another
data.image_size holds the ViT trunk's RoPE tables of that size; they are never learned, and
the export writes the preset size's instead, so the file loads strictly into sam3.

Detector and tracker share one ViT trunk. A detect job trains it by default; the base's
tracker (and its neck) learned on the base's trunk and would see other features. So when
the checkpoint's trunk differs from the base's and parts consuming it come from the base,
export refuses, naming the fix: freeze the trunk in the detect job
(model.freeze.vision_backbone), or fine-tune the tracker on the new trunk (a track job
initialised from this one: model.init.job_id), or pass --allow-retrained-trunk to write
the mixed file anyway (a warning says which parts were not trained on that trunk).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from sam3_video.backbone.presets import preset_dims
from sam3_video.config import ConfigError
from sam3_video.exit_codes import CONFIG_ERROR
from sam3_video.lora import lora_of_checkpoint
from sam3_video.weights import (DETECTOR_PREFIX, TRACKER_NECK_PREFIX, TRACKER_PREFIX,
                                read_state_dict, read_weights_file, state_dict_of,
                                to_upstream_layout)

TRUNK = DETECTOR_PREFIX + "backbone.vision_backbone.trunk."
TRACKER_NECK = DETECTOR_PREFIX + TRACKER_NECK_PREFIX


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


def trunk_consumers_from_base(exported: dict, base: dict, added: list[str]) -> list[str]:
    """The parts taken from the base that consume the trunk, if the export's trunk is not
    the base's (else []): "tracker" (tracker.* or its neck) and/or "detector" (its neck,
    encoder, decoder and heads)."""
    trunk = [k for k in exported if k.startswith(TRUNK)]
    if all(k in base and torch.equal(exported[k], base[k]) for k in trunk):
        return []
    parts = []
    if any(k.startswith((TRACKER_PREFIX, TRACKER_NECK)) for k in added):
        parts.append("tracker")
    if any(k.startswith(DETECTOR_PREFIX) and not k.startswith((TRUNK, TRACKER_NECK)) for k in added):
        parts.append("detector")
    return parts


def checkpoint_weights(checkpoint: Path) -> dict:
    """The model tensors of a checkpoint (or weights file), as the model at its preset's
    own image size holds them. A LoRA run's checkpoint holds only adapters and what else
    trained: its base is rebuilt (from the model.init it records, which DATA_ROOT /
    RUNS_ROOT must reach as in training) and the adapters are merged into it (peft), so the
    result has the plain keys only, no `lora_` ones."""
    blob = read_weights_file(checkpoint, "checkpoint")
    if lora_of_checkpoint(blob) is None:
        state = state_dict_of(blob, checkpoint, "checkpoint")
    else:
        state = merged_lora_weights(blob)
    return at_preset_image_size(state, blob)


def merged_lora_weights(blob: dict) -> dict:
    if (blob.get("config") or {}).get("task", "detect") == "track":
        from sam3_video.tracker.build import merged_lora_checkpoint
    else:
        from sam3_video.detector.build import merged_lora_checkpoint
    return merged_lora_checkpoint(blob, field="checkpoint")


def at_preset_image_size(state: dict, blob: object) -> dict:
    """sam3.pt is the model at its preset's image size (sam3: 1008 px, which sam3's
    builder hard-codes); a run at another data.image_size (e.g. 336 px) holds the trunk's
    RoPE tables of that size, which are recomputed here (they are never learned)."""
    config = blob.get("config") if isinstance(blob, dict) else None
    if not isinstance(config, dict):
        return state
    preset = (config.get("model") or {}).get("preset", "tiny")
    trained_at = (config.get("data") or {}).get("image_size")
    dims = preset_dims(preset)
    if trained_at is None or trained_at == dims.image_size:
        return state
    from sam3_video.backbone.vision import with_rope_tables

    return with_rope_tables(state, dims, dims.image_size)


def export_checkpoint(checkpoint: Path, out: Path, base: Path | None = None,
                      allow_retrained_trunk: bool = False) -> dict:
    """Write the upstream-layout weights of `checkpoint` to `out` (atomically)."""
    exported = to_upstream_layout(checkpoint_weights(checkpoint))
    added, stale = [], []
    if base:
        base_state = read_state_dict(base, "base")
        added = fill_from_base(exported, base_state)
        stale = trunk_consumers_from_base(exported, base_state, added)
    if stale and not allow_retrained_trunk:
        raise ConfigError([
            f"base: the checkpoint's ViT trunk was retrained, but the {' and '.join(stale)} "
            "would come from the base, which learned on the base's trunk. Freeze the trunk "
            "when training (model.freeze.vision_backbone: true), or fine-tune the "
            f"{stale[0]} on this trunk (a job with model.init.job_id of this one), or pass "
            "--allow-retrained-trunk to export the mix anyway"])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save(exported, tmp)
    os.replace(tmp, out)
    count = lambda prefix: sum(k.startswith(prefix) for k in exported)  # noqa: E731
    return {"detector": count(DETECTOR_PREFIX), "tracker": count(TRACKER_PREFIX),
            "from_base": len(added), "not_trained_on_trunk": stale}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sam3_video.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="training checkpoint (step_XXXXXXX.pt)")
    parser.add_argument("out", type=Path, help="output file in the sam3.pt layout")
    parser.add_argument("--base", type=Path, default=None,
                        help="upstream sam3.pt supplying the tensors the checkpoint lacks")
    parser.add_argument("--allow-retrained-trunk", action="store_true",
                        help="export even if parts from the base never saw the retrained trunk")
    args = parser.parse_args(argv)
    try:
        counts = export_checkpoint(args.checkpoint, args.out, args.base, args.allow_retrained_trunk)
    except ConfigError as err:
        print("export: " + "\n  ".join(err.problems), file=sys.stderr)
        return CONFIG_ERROR
    print(f"wrote {args.out}: {counts['detector']} detector.* and {counts['tracker']} tracker.* "
          f"tensors ({counts['from_base']} from the base)")
    if counts["not_trained_on_trunk"]:
        print(f"warning: the {' and '.join(counts['not_trained_on_trunk'])} in {args.out} came "
              "from the base and never saw this checkpoint's retrained trunk", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
