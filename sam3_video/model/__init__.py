"""Multi-frame SAM3 (detector) built from the `sam3` package's classes.

    model = build_model(cfg.model, image_size)         # VideoSam3, CPU, train mode
    loss_fn = build_detection_loss(dims.num_queries, distributed=world_size > 1)
    losses = loss_fn(model(batch), batch)               # losses["core_loss"] to backprop
"""
from sam3_video.model.build import apply_freeze, build_model
from sam3_video.model.builders import build_vision_backbone
from sam3_video.model.loss import CORE_LOSS_KEY, DetectionLoss, build_detection_loss
from sam3_video.model.presets import PRESETS, SAM3, TINY, Sam3Dims, default_image_size, preset_dims
from sam3_video.model.video_sam3 import VideoSam3

__all__ = [
    "CORE_LOSS_KEY", "DetectionLoss", "PRESETS", "SAM3", "Sam3Dims", "TINY", "VideoSam3",
    "apply_freeze", "build_detection_loss", "build_model", "build_vision_backbone",
    "default_image_size", "preset_dims",
]
