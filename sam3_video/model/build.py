"""build_model: a ready-to-train VideoSam3 for a ModelConfig (preset, init weights, freezing)."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from sam3_video import compat
from sam3_video.config import RUNS_ROOT_ENV, ConfigError, ModelConfig, weights_path
from sam3_video.model.builders import build_detector_parts
from sam3_video.model.loss import build_matcher
from sam3_video.model.presets import preset_dims
from sam3_video.model.video_sam3 import VideoSam3

UPSTREAM_DETECTOR_PREFIX = "detector."
# The upstream detector has the tracker's (SAM2) neck; a detector built without it skips it.
TRACKER_NECK_PREFIX = "backbone.vision_backbone.sam2_convs."
VISION_PREFIX = "backbone.vision_backbone."
TEXT_PREFIX = "backbone.language_backbone."


def build_model(cfg: ModelConfig, image_size: int | None = None, *,
                with_tracker_neck: bool = False) -> VideoSam3:
    """A VideoSam3 on the CPU in train mode: built for cfg.preset at `image_size`
    (None: the preset's), initial weights from cfg.init.path, cfg.freeze applied.
    Parameters the forward never reaches have requires_grad False (compat, item 9), so
    DistributedDataParallel(model, find_unused_parameters=False) works."""
    dims = preset_dims(cfg.preset)
    model = VideoSam3(
        **build_detector_parts(dims, image_size or dims.image_size, with_tracker_neck),
        num_feature_levels=1, o2m_mask_predict=True, use_instance_query=False,
        multimask_output=True, inst_interactive_predictor=None, matcher=build_matcher(),
        use_dot_prod_scoring=True, supervise_joint_box_scores=True,
    )
    compat.init_text_encoder_params(model)
    if cfg.init is not None and cfg.init.path:
        path = weights_path(cfg.init.path, "model.init.path")
        load_initial_weights(model, path, cfg.preset)
    elif cfg.init is not None and cfg.init.job_id is not None:
        raise ConfigError(["model.init.path: job_id was given but not resolved to a checkpoint file"])
    compat.freeze_detector_unused_params(model)
    apply_freeze(model, vision_backbone=cfg.freeze.vision_backbone, text_encoder=cfg.freeze.text_encoder)
    return model.train()


def read_weights_file(path: Path) -> dict:
    """The tensors of an upstream sam3.pt or a checkpoint of ours, as a flat state dict."""
    if not path.is_file():
        raise ConfigError([f"model.init.path: {path}: file not found"])
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # Our trainer's checkpoints may hold non-tensor state (e.g. RNG states) that the
        # safe loader refuses; trust full unpickling only for files under RUNS_ROOT.
        runs_root = os.environ.get(RUNS_ROOT_ENV)
        if not runs_root or Path(runs_root).resolve() not in path.resolve().parents:
            raise ConfigError([f"model.init.path: {path}: not a plain tensor checkpoint"]) from None
        blob = _load_or_config_error(path, weights_only=False)
    except Exception as err:  # truncated file, not a torch file, ...
        raise ConfigError([f"model.init.path: {path}: cannot be read ({err})"]) from None
    if isinstance(blob, dict) and isinstance(blob.get("model"), dict):
        blob = blob["model"]
    if not isinstance(blob, dict) or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise ConfigError([f"model.init.path: {path}: holds no state dict"])
    return blob


def _load_or_config_error(path: Path, weights_only: bool):
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:
        raise ConfigError([f"model.init.path: {path}: cannot be read ({err})"]) from None


def detector_state(state: dict) -> dict:
    """Detector weights in our key layout, from either layout (upstream: 'detector.*')."""
    if any(k.startswith(UPSTREAM_DETECTOR_PREFIX) for k in state):
        return {k[len(UPSTREAM_DETECTOR_PREFIX):]: v for k, v in state.items()
                if k.startswith(UPSTREAM_DETECTOR_PREFIX)}
    return {k: v for k, v in state.items() if not k.startswith("tracker.")}


def load_initial_weights(model: VideoSam3, path: Path, preset: str) -> None:
    """Load every detector tensor; a missing key or a shape mismatch is a config error
    (usually weights of another preset)."""
    source = detector_state(read_weights_file(path))
    own = model.state_dict()
    has_tracker_neck = any(k.startswith(TRACKER_NECK_PREFIX) for k in own)
    if not has_tracker_neck:
        source = {k: v for k, v in source.items() if not k.startswith(TRACKER_NECK_PREFIX)}
    missing = sorted(set(own) - set(source))
    unexpected = sorted(set(source) - set(own))
    mismatched = sorted(k for k in set(own) & set(source) if own[k].shape != source[k].shape)
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected),
                        ("shape mismatch", mismatched)):
        if keys:
            problems.append(f"model.init.path: {path} does not fit preset {preset!r}: "
                            f"{len(keys)} {label} tensors, e.g. {', '.join(keys[:3])}")
    if problems:
        raise ConfigError(problems)
    model.load_state_dict(source, strict=True)


def apply_freeze(model: torch.nn.Module, *, vision_backbone: bool, text_encoder: bool) -> None:
    """Frozen parts keep requires_grad False (the optimiser then skips them)."""
    frozen_prefixes = tuple(p for p, on in ((VISION_PREFIX, vision_backbone),
                                            (TEXT_PREFIX, text_encoder)) if on)
    for name, param in model.named_parameters():
        if frozen_prefixes and name.startswith(frozen_prefixes):
            param.requires_grad_(False)
