"""The `track` task: training SAM3's tracker (memory and propagation) on video clips.

Wires sam3_video.tracker to the trainer's Task interface (sam3_video.tasks): the model
is the shared vision backbone (trunk frozen by default) plus Sam3TrackerTrain
(sam3_video.tracker.build.build_job_model; model.lora puts adapters on it); a batch is a
few clips with up to `track.max_objects` objects each; evaluation reports J&F of
propagating a first-frame mask through held-out clips, with and without memory.
"""
from __future__ import annotations

from pathlib import Path

import torch

from sam3_video.backbone.presets import default_image_size
from sam3_video.checks import config_problems
from sam3_video.config import ConfigError, EvalConfig, TrainConfig, TrackConfig, data_path


class TrackTask:
    # The tracker has parameters that a step may not reach: no_mem_pos_enc is unused,
    # the no-object embeddings only see absent objects, the neck's 0.5x level is dropped.
    find_unused_parameters = True

    def __init__(self, cfg: TrainConfig | EvalConfig):
        self.cfg = cfg
        self.track: TrackConfig = cfg.track if isinstance(cfg, TrainConfig) else TrackConfig()
        self.image_size = cfg.data.image_size or default_image_size(cfg.model.preset)
        self._loss_fn = None

    # -- checks ------------------------------------------------------------------------

    def check(self) -> None:
        problems = []
        if isinstance(self.cfg, TrainConfig) and self.cfg.data.frames_per_clip < 2:
            problems.append("data.frames_per_clip: tracking needs at least 2 frames per clip "
                            "(one to prompt, one to propagate to)")
        problems += config_problems(self.cfg)
        if problems:
            raise ConfigError(problems)

    # -- model and data ----------------------------------------------------------------

    def build_model(self) -> torch.nn.Module:
        from sam3_video.tracker.build import build_job_model

        return build_job_model(self.cfg.model, self.image_size, self.track)

    def train_dataset(self):
        from sam3_video.data import AugmentedClips, ClipAugment
        from sam3_video.tracker.clips import TrackClips

        data = self.cfg.data
        clips = TrackClips(data_path(data.train, "data.train"), self.image_size,
                           frames_per_clip=data.frames_per_clip, max_objects=self.track.max_objects,
                           stride_min=data.frame_stride_min, stride_max=data.frame_stride_max,
                           random_reverse=data.random_reverse_time)
        # data.augment: one random resize + pad (+ mirror) per clip, on frames and masks
        augment = ClipAugment.from_config(self.image_size, data.augment)
        return clips if augment is None else AugmentedClips(clips, augment)

    def collate(self, items: list):
        from sam3_video.tracker.clips import collate_clips

        return collate_clips(items)

    def num_frames(self, batch) -> int:
        return batch.num_frames

    # -- loss and evaluation -----------------------------------------------------------

    def loss(self, model: torch.nn.Module, batch) -> dict[str, torch.Tensor]:
        if self._loss_fn is None:
            from sam3_video.tracker.loss import MultiStepMultiMaskLoss

            self._loss_fn = MultiStepMultiMaskLoss()
        batch = batch.to(next(model.parameters()).device)
        outputs = model(batch.images, list(batch.img_ids), batch.masks)
        return self._loss_fn(outputs, batch.masks)

    def evaluate(self, model: torch.nn.Module, dataset_dir: str,
                 overlays_dir: Path | None = None) -> dict[str, float]:
        """J&F on `dataset_dir` (relative to DATA_ROOT) through sam3's predictor, with memory
        and with memory disabled: {"j_and_f", "j", "f", "j_and_f_no_memory"}. Draws no
        overlays (`overlays_dir` is for detect; track jobs' predict overlays show tracking)."""
        from sam3_video.tracker.evaluate import evaluate_track_model

        field = "data.val" if isinstance(self.cfg, TrainConfig) else "data.dataset"
        return evaluate_track_model(model, data_path(dataset_dir, field))

    # -- evaluation jobs (sam3_video.evaluate) -----------------------------------------

    def predict(self, model: torch.nn.Module, root: Path) -> list:
        """Masklets propagated from each object's first visible frame, with memory and with
        memory disabled (records carry "memory": true/false)."""
        from sam3_video.tracker.evaluate import predict_track_model

        return predict_track_model(model, root)

    def score(self, predictions: list, root: Path) -> dict[str, float]:
        from sam3_video.tracker.evaluate import score_track_predictions

        return score_track_predictions(predictions, root)
