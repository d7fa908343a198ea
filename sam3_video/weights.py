"""Weights files: the one loader, the `detector.` / `tracker.` layout, and its adapters.

Every file of weights is read here, and only with ``torch.load(weights_only=True)``: a file
may hold tensors, numbers, strings and containers of them, never objects whose unpickling
runs code. The files are of two layouts:

- upstream (sam3.pt, and what ``python -m sam3_video.export`` writes): a flat state dict of
  sam3's video model, ``detector.*`` (the image model Sam3Image, with the shared vision
  backbone and its tracker neck ``sam2_convs``) and ``tracker.*`` (memory attention, memory
  encoder, SAM heads, object pointers; the upstream tracker owns no backbone);
- ours (a training checkpoint ``{"model": state_dict, ...}``, sam3_video.checkpoint): the
  detect task's VideoSam3 holds Sam3Image's keys without a prefix; the track task's
  TrackModel holds ``backbone.*`` (= sam3.pt's ``detector.backbone.*``) and ``tracker.*``
  (= sam3.pt's ``tracker.*``).

The adapters turn either layout into what one task's model loads (`detector_weights`,
`track_model_weights`) and ours into the upstream one (`to_upstream_layout`).
"""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch

from sam3_video.config import ConfigError

DETECTOR_PREFIX = "detector."
TRACKER_PREFIX = "tracker."
BACKBONE_PREFIX = "backbone."   # TrackModel's shared vision backbone (sam3.pt: detector.backbone.)
DDP_PREFIX = "module."          # a state dict taken from a DistributedDataParallel wrapper
# The detector's tracker (SAM2) neck: in sam3.pt, absent from a detector built without it.
TRACKER_NECK_PREFIX = "backbone.vision_backbone.sam2_convs."
# A trunk block's RoPE table (`...trunk.blocks.<i>.attn.freqs_cis`): a buffer that sam3's
# ViT computes from the image size when it is built and never learns. Its global-attention
# blocks have one row per patch of the image, so a file made at 1008 px (sam3.pt) holds
# other shapes than a model built at 336 px; loading keeps the model's own tables.
ROPE_TABLE = re.compile(r"(?:^|\.)vision_backbone\.trunk\.blocks\.(\d+)\.attn\.freqs_cis$")


# ---------------------------------------------------------------------------- reading

def load_file(path: str | os.PathLike) -> object:
    """A torch file's content, on the CPU. weights_only=True: the product's only torch.load."""
    return torch.load(path, map_location="cpu", weights_only=True)


def _refusal(err: pickle.UnpicklingError) -> str:
    """What torch's weights-only unpickler refused, e.g. "numpy.core.multiarray._reconstruct"."""
    found = re.search(r"Unsupported (?:global|operand)[^.]*?(GLOBAL \S+|\d+)", str(err))
    return found.group(0) if found else type(err).__name__


def read_state_dict(path: str | os.PathLike, field: str) -> dict[str, torch.Tensor]:
    """The tensors of a weights file of either layout, as a flat state dict: a bare state
    dict, or the "model" entry of a training checkpoint. Raises ConfigError naming `field`
    and the file when it is missing, unreadable, pickles objects other than tensors and
    plain data, or holds no state dict."""
    return state_dict_of(read_weights_file(path, field), path, field)


def read_weights_file(path: str | os.PathLike, field: str) -> object:
    """A weights file's whole content (a state dict, or a training checkpoint's dict);
    ConfigError naming `field` and the file when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{field}: {path}: file not found"])
    try:
        return load_file(path)
    except pickle.UnpicklingError as err:
        raise ConfigError([f"{field}: {path}: not a plain tensor checkpoint: it pickles objects "
                           f"that are never loaded ({_refusal(err)})"]) from None
    except Exception as err:  # truncated file, not a torch file, ...
        raise ConfigError([f"{field}: {path}: cannot be read ({type(err).__name__}: {err})"]) from None


def state_dict_of(blob: object, path: str | os.PathLike, field: str) -> dict[str, torch.Tensor]:
    """The flat state dict in a file's content (read_weights_file): itself, or "model"."""
    if isinstance(blob, dict) and isinstance(blob.get("model"), dict):
        blob = blob["model"]
    if not isinstance(blob, dict) or not blob or not all(
            isinstance(v, torch.Tensor) for v in blob.values()):
        raise ConfigError([f"{field}: {path}: holds no state dict "
                           "(expected name -> tensor, or {'model': state_dict})"])
    return blob


# ---------------------------------------------------------------------------- layouts

def rope_table_block(key: str) -> int | None:
    """The trunk block whose RoPE table `key` (of any layout) is, else None."""
    found = ROPE_TABLE.search(key)
    return int(found.group(1)) if found else None


def with_own_rope_tables(source: dict, own: dict) -> dict:
    """`source` with the model's own RoPE tables (`own`: its state dict) in place of the
    file's: they are computed for the image size the model was built at."""
    return {k: own[k] if k in own and rope_table_block(k) is not None else v
            for k, v in source.items()}


def is_upstream_layout(state: dict) -> bool:
    return any(k.startswith(DETECTOR_PREFIX) for k in state)


def to_upstream_layout(state: dict) -> dict[str, torch.Tensor]:
    """Ours -> upstream: `tracker.*` stays, every other key (the detector's, or a
    TrackModel's `backbone.*`) gets `detector.`; keys already in the upstream layout are
    kept and a DDP wrapper's `module.` is dropped. Tensors detached, contiguous, on the CPU."""
    out = {}
    for key, tensor in state.items():
        if key.startswith(DDP_PREFIX):
            key = key[len(DDP_PREFIX):]
        if not key.startswith((TRACKER_PREFIX, DETECTOR_PREFIX)):
            key = DETECTOR_PREFIX + key
        out[key] = tensor.detach().cpu().contiguous()
    return out


def from_upstream_layout(state: dict) -> dict[str, torch.Tensor]:
    """Upstream -> ours: `detector.X` becomes `X`, `tracker.*` stays, anything else is dropped."""
    out = {k[len(DETECTOR_PREFIX):]: v for k, v in state.items() if k.startswith(DETECTOR_PREFIX)}
    out.update({k: v for k, v in state.items() if k.startswith(TRACKER_PREFIX)})
    return out


def detector_weights(state: dict) -> dict[str, torch.Tensor]:
    """The detect task's tensors (VideoSam3's keys) from a state dict of either layout."""
    if is_upstream_layout(state):
        state = from_upstream_layout(state)
    return {k: v for k, v in state.items() if not k.startswith(TRACKER_PREFIX)}


def track_model_weights(state: dict) -> dict[str, torch.Tensor]:
    """The track task's tensors (TrackModel's `backbone.*` and `tracker.*`) from a state dict
    of either layout; of the upstream detector only the shared backbone is kept."""
    if not is_upstream_layout(state):
        return dict(state)
    return {k: v for k, v in from_upstream_layout(state).items()
            if k.startswith((BACKBONE_PREFIX, TRACKER_PREFIX))}


# ---------------------------------------------------------------------------- initial weights

def _fit_problems(own: dict, source: dict, where: str, *, unexpected_too: bool) -> list[str]:
    """What keeps `source` from loading into a model whose state dict is `own`."""
    missing = sorted(set(own) - set(source))
    mismatched = sorted(k for k in set(own) & set(source) if own[k].shape != source[k].shape)
    problems = []
    if missing:
        problems.append(f"{where}: the file lacks {len(missing)} of the model's tensors "
                        f"(missing: {', '.join(missing[:3])})")
    if unexpected_too:
        unexpected = sorted(set(source) - set(own))
        if unexpected:
            problems.append(f"{where}: {len(unexpected)} unexpected tensors, "
                            f"e.g. {', '.join(unexpected[:3])}")
    if mismatched:
        k = mismatched[0]
        problems.append(f"{where}: {len(mismatched)} shape mismatch, e.g. {k} has shape "
                        f"{tuple(source[k].shape)}, the model needs {tuple(own[k].shape)}")
    return problems


def load_detector_weights(model: torch.nn.Module, path: str | os.PathLike, preset: str,
                          field: str = "model.init.path", blob: object = None) -> None:
    """Every tensor of a detect-task model from a file of either layout, strictly: a missing
    or unexpected key or a shape mismatch is a ConfigError (usually another preset's file).
    The tracker neck is skipped when the model was built without it. `blob`: the file's
    content, when the caller has read it already (read_weights_file)."""
    if blob is None:
        blob = read_weights_file(path, field)
    own = model.state_dict()
    source = with_own_rope_tables(detector_weights(state_dict_of(blob, path, field)), own)
    if not any(k.startswith(TRACKER_NECK_PREFIX) for k in own):
        source = {k: v for k, v in source.items() if not k.startswith(TRACKER_NECK_PREFIX)}
    problems = _fit_problems(own, source, f"{field}: {path} does not fit preset {preset!r}",
                             unexpected_too=True)
    if problems:
        raise ConfigError(problems)
    model.load_state_dict(source, strict=True)


def load_track_model_weights(model: torch.nn.Module, path: str | os.PathLike, preset: str,
                             field: str = "model.init.path", blob: object = None) -> None:
    """A TrackModel's tensors from an upstream sam3.pt (or our export) or a training
    checkpoint of ours. A file without tracker weights (a detector's) initialises the shared
    backbone and leaves the tracker at its random init; other detector tensors are ignored.
    `blob`: the file's content, when the caller has read it already (read_weights_file)."""
    if blob is None:
        blob = read_weights_file(path, field)
    own = model.state_dict()
    state = with_own_rope_tables(track_model_weights(state_dict_of(blob, path, field)), own)
    tracker_keys = [k for k in own if k.startswith(TRACKER_PREFIX)]
    if not any(k in state for k in tracker_keys):
        print(f"{field}: {path} has no tracker weights; the tracker starts from random init",
              flush=True)
        own = {k: v for k, v in own.items() if not k.startswith(TRACKER_PREFIX)}
    problems = _fit_problems(own, state, f"{field}: {path} does not fit preset {preset!r}",
                             unexpected_too=False)
    if problems:
        raise ConfigError(problems)
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
