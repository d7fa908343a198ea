"""The `detect` task: grounding a noun phrase on every frame of a clip (SAM3's detector).

Model and loss come from this package, clips from sam3_video.data; this module only wires
them to the trainer's Task interface (sam3_video.tasks) and the evaluator.
"""
from __future__ import annotations

from pathlib import Path

import torch

from sam3_video.backbone.presets import default_image_size, preset_dims
from sam3_video.checks import config_problems
from sam3_video.config import ConfigError, EvalConfig, TrainConfig, data_path


class DetectTask:
    find_unused_parameters = True  # frozen parts and unused heads must not stall DDP

    def __init__(self, cfg: TrainConfig | EvalConfig):
        self.cfg = cfg
        self.image_size = cfg.data.image_size or default_image_size(cfg.model.preset)
        self._loss_fn = None

    # -- checks ------------------------------------------------------------------------

    def check(self) -> None:
        min_frames = self.cfg.data.frames_per_clip if isinstance(self.cfg, TrainConfig) else None
        problems = config_problems(self.cfg, min_frames)
        if problems:
            raise ConfigError(problems)

    # -- model and data ----------------------------------------------------------------

    def build_model(self) -> torch.nn.Module:
        from sam3_video.detector.build import build_model

        # Loads model.init.path (ours or upstream sam3.pt) and applies model.freeze.
        return build_model(self.cfg.model, self.image_size)

    def train_dataset(self):
        from sam3_video.data import ClipAugment, make_video_dataset

        data = self.cfg.data
        return make_video_dataset(
            str(data_path(data.train, "data.train")), image_size=self.image_size,
            frames_per_clip=data.frames_per_clip, stride_min=data.frame_stride_min,
            stride_max=data.frame_stride_max, random_reverse=data.random_reverse_time,
            training=True, negative_ratio=data.negative_ratio,
            augment=ClipAugment.from_config(self.image_size, data.augment))

    def collate(self, items: list):
        from sam3_video.data import collate

        return collate(items)

    def num_frames(self, batch) -> int:
        return int(batch.img_batch.shape[0])

    # -- loss and evaluation -----------------------------------------------------------

    def loss(self, model: torch.nn.Module, batch) -> dict[str, torch.Tensor]:
        from sam3_video.data import move_to

        if self._loss_fn is None:
            from sam3_video.detector.loss import build_detection_loss

            self._loss_fn = build_detection_loss(
                preset_dims(self.cfg.model.preset).num_queries,
                distributed=torch.distributed.is_initialized())
        device = next(model.parameters()).device
        batch = move_to(batch, device)
        losses = self._loss_fn(model(batch), batch)
        out = {"loss": losses["core_loss"]}
        for name, value in losses.items():
            if name != "core_loss" and torch.is_tensor(value) and value.numel() == 1:
                out[name] = value
        return out

    def predict(self, model: torch.nn.Module, root: Path) -> list:
        """Per-frame detections (detector.evaluate.Detection) over every clip of the dataset."""
        from sam3_video.detector import evaluate

        frames = self.cfg.data.frames_per_clip if isinstance(self.cfg, EvalConfig) else None
        return evaluate.predict(model, root, self.image_size, frames_per_clip=frames)

    def score(self, detections: list, root: Path) -> dict[str, float]:
        """Video metrics (mask_ap, phrase_ap, hota, teta, cgf1, j_and_f, j, f) and the
        per-frame COCO AP (frame_mask_ap, frame_box_ap, ...) as one flat map."""
        return self.score_video(detections, root)["metrics"]

    def score_video(self, detections: list, root: Path) -> dict:
        """Every video metric of the detections, linked into masklets: its results plus
        "metrics" (the flat map of score)."""
        from sam3_video.detector import evaluate

        threshold = self.cfg.score_threshold if isinstance(self.cfg, EvalConfig) else 0.5
        return evaluate.score_video(detections, root, threshold)

    def evaluate(self, model: torch.nn.Module, dataset_dir: str,
                 overlays_dir: Path | None = None) -> dict[str, float]:
        """Metrics on `dataset_dir` (relative to DATA_ROOT): score(predict(...)); with
        `overlays_dir`, also the masklets next to the ground truth drawn there."""
        from sam3_video.overlays import write_comparison_sheets

        root = data_path(dataset_dir, "data.val")
        video = self.score_video(self.predict(model, root), root)
        if overlays_dir is not None:
            write_comparison_sheets(overlays_dir, root, video["predictions"])
        return video["metrics"]
