"""build_model: a ready-to-train VideoSam3 for a ModelConfig (preset, init weights, freezing)."""
from __future__ import annotations

import torch

from sam3_video import compat
from sam3_video.config import ConfigError, ModelConfig, weights_path
from sam3_video.model.builders import build_detector_parts
from sam3_video.model.loss import build_matcher
from sam3_video.model.presets import preset_dims
from sam3_video.model.video_sam3 import VideoSam3
from sam3_video.weights import load_detector_weights

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
        load_detector_weights(model, path, cfg.preset)
    elif cfg.init is not None and cfg.init.job_id is not None:
        raise ConfigError(["model.init.path: job_id was given but not resolved to a checkpoint file"])
    compat.freeze_detector_unused_params(model)
    apply_freeze(model, vision_backbone=cfg.freeze.vision_backbone, text_encoder=cfg.freeze.text_encoder)
    return model.train()


def apply_freeze(model: torch.nn.Module, *, vision_backbone: bool, text_encoder: bool) -> None:
    """Frozen parts keep requires_grad False (the optimiser then skips them)."""
    frozen_prefixes = tuple(p for p, on in ((VISION_PREFIX, vision_backbone),
                                            (TEXT_PREFIX, text_encoder)) if on)
    for name, param in model.named_parameters():
        if frozen_prefixes and name.startswith(frozen_prefixes):
            param.requires_grad_(False)
