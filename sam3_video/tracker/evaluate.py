"""Semi-supervised VOS evaluation of a TrackModel: J&F of propagating each object's mask
from its first visible frame through the rest of its video.

The main path runs sam3's own inference class, Sam3TrackerPredictor (add_new_mask +
propagate_in_video), with the exported `tracker.*` weights loaded strictly and image
features from our shared backbone handed in through its feature cache (as sam3's video
model does). The same with memory disabled (num_maskmem=0: no memories, no object
pointers) is the ablation that shows the tracker uses its memory.

J and F are computed at the video's own resolution and averaged over the frames after the
prompt frame, then over objects (DAVIS). A frame where object and prediction are both
empty counts as correct.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sam3.model.sam3_tracking_predictor import Sam3TrackerPredictor

from sam3_video import compat
from sam3_video.backbone.vision import EVAL_CHUNK_FRAMES
from sam3_video.data.masks import to_rle
from sam3_video.data.native import NativeDataset, Video, load_native
from sam3_video.metrics.j_and_f import counted_frames, frames_j_and_f
from sam3_video.tracker.build import tracker_kwargs
from sam3_video.tracker.clips import load_frame, resize_masks, track_mask
from sam3_video.tracker.export import load_into_predictor, tracker_state_dict
from sam3_video.tracker.prompts import first_frame_mask_plan


@dataclass
class EvalObject:
    video: Video
    track_id: int
    first_frame: int
    gt: np.ndarray          # bool [L, H, W] at the video's resolution


def build_predictor(model, num_maskmem: int | None = None,
                    exported: dict[str, torch.Tensor] | None = None) -> Sam3TrackerPredictor:
    """A backbone-less Sam3TrackerPredictor (upstream's tracker settings) holding the
    `tracker.*` weights of `exported` (an upstream-layout state dict, e.g. a loaded export
    file) or, by default, the model's own, loaded strictly."""
    compat.install_cpu_tracker()
    kwargs = tracker_kwargs(model.preset, model.image_size, model.tracker.num_maskmem)
    predictor = Sam3TrackerPredictor(
        clear_non_cond_mem_around_input=True, fill_hole_area=0, non_overlap_masks_for_output=False,
        always_start_from_first_ann_frame=False, **kwargs)
    load_into_predictor(predictor, tracker_state_dict(model) if exported is None else exported)
    if num_maskmem is not None:
        predictor.num_maskmem = num_maskmem
    device = next(model.parameters()).device
    return predictor.to(device).eval()


class VideoFeatures:
    """Frames of one video at model resolution and their tracker features (the backbone
    runs `chunk` frames at a time; the features of every frame are kept)."""

    def __init__(self, model, data: NativeDataset, video: Video, chunk: int = EVAL_CHUNK_FRAMES):
        device = next(model.parameters()).device
        self.images = torch.stack([load_frame(data.image_dir / f, model.image_size)
                                   for f in video.file_names]).to(device)
        with torch.no_grad():
            parts = [model.tracker_features(self.images[i:i + chunk])
                     for i in range(0, len(self.images), chunk)]
        self.features = {key: [torch.cat([p[key][level] for p in parts])
                               for level in range(len(parts[0][key]))]
                         for key in ("backbone_fpn", "vision_pos_enc")}

    def frame_cache(self) -> dict:
        """Sam3TrackerPredictor's `cached_features`: frame -> (image, backbone_out)."""
        fpn, pos = self.features["backbone_fpn"], self.features["vision_pos_enc"]
        return {t: (self.images[t:t + 1],
                    {"backbone_fpn": [f[t:t + 1] for f in fpn], "vision_pos_enc": [p[t:t + 1] for p in pos]})
                for t in range(self.images.shape[0])}


def objects_of(data: NativeDataset, video: Video) -> list[EvalObject]:
    objects = []
    for track in data.tracks_of(video.id):
        present = track.present_frames()
        if track.iscrowd or not present or present[0] >= video.length - 2:
            # DAVIS counts the frames after the prompt except the video's last: none left
            continue
        gt = np.stack([track_mask(track, video, t) for t in range(video.length)])
        objects.append(EvalObject(video, track.id, present[0], gt))
    return objects


def propagate_with_predictor(predictor: Sam3TrackerPredictor, feats: VideoFeatures,
                             obj: EvalObject) -> list[np.ndarray]:
    """Masks (bool, video resolution) on the frames after the prompt frame."""
    video = obj.video
    on_cpu = feats.images.device.type == "cpu"
    state = predictor.init_state(video_height=video.height, video_width=video.width,
                                 num_frames=video.length, cached_features=feats.frame_cache(),
                                 offload_state_to_cpu=on_cpu)
    state["device"] = feats.images.device
    predictor.add_new_mask(state, frame_idx=obj.first_frame, obj_id=1,
                           mask=torch.from_numpy(obj.gt[obj.first_frame]))
    preds = {}
    for t, _, _, video_res, _ in predictor.propagate_in_video(
            state, start_frame_idx=obj.first_frame, max_frame_num_to_track=video.length,
            reverse=False, tqdm_disable=True, propagate_preflight=True):
        preds[t] = (video_res[0, 0] > 0).cpu().numpy()
    return [preds[t] for t in range(obj.first_frame + 1, video.length)]


def propagate_with_training_class(model, feats: VideoFeatures, obj: EvalObject) -> list[np.ndarray]:
    """The same through Sam3TrackerTrain.forward in eval mode (cross-check of the export)."""
    video, f0 = obj.video, obj.first_frame
    frames = list(range(f0, video.length))
    gt = resize_masks(obj.gt[frames][:, None], model.image_size).to(feats.images.device)
    features = {k: [x[f0:] for x in v] for k, v in feats.features.items()}
    ids = [torch.tensor([t], device=gt.device) for t in range(len(frames))]
    outs = model.tracker(features, feats.images[f0:], ids, gt, plan=first_frame_mask_plan(gt))
    preds = []
    for out in outs[1:]:
        logits = F.interpolate(out["pred_masks"].float(), size=(video.height, video.width),
                               mode="bilinear", align_corners=False)
        preds.append((logits[0, 0] > 0).cpu().numpy())
    return preds


@dataclass
class Masklet:
    """One object propagated from the GT mask on its first visible frame."""
    video_id: int
    track_id: int
    prompt_frame: int
    memory: bool                 # False: the num_maskmem=0 ablation
    masks: list[np.ndarray]      # bool [H, W] on frames prompt_frame+1 .. end of video

    def to_json(self) -> dict:
        return {"video_id": self.video_id, "track_id": self.track_id,
                "prompt_frame": self.prompt_frame, "memory": self.memory,
                "segmentations": [to_rle(m) for m in self.masks]}


@torch.no_grad()
def propagate_dataset(model, dataset_dir: str | Path, *, path: str = "predictor",
                      num_maskmem: int | None = None, exported: dict | None = None,
                      max_videos: int | None = None) -> list[Masklet]:
    """Propagate every object of `dataset_dir` from its first visible frame.
    path: "predictor" (sam3's Sam3TrackerPredictor, with `exported` tracker weights when
    given, else the model's) or "training" (our class, eval mode)."""
    data = load_native(dataset_dir)
    was_training = model.training
    model.eval()
    predictor = build_predictor(model, num_maskmem, exported) if path == "predictor" else None
    saved_maskmem = model.tracker.num_maskmem
    if path == "training" and num_maskmem is not None:
        model.tracker.num_maskmem = num_maskmem
    masklets = []
    try:
        for video in list(data.videos.values())[:max_videos]:
            objects = objects_of(data, video)
            if not objects:
                continue
            feats = VideoFeatures(model, data, video)
            for obj in objects:
                if predictor is not None:
                    masks = propagate_with_predictor(predictor, feats, obj)
                else:
                    masks = propagate_with_training_class(model, feats, obj)
                masklets.append(Masklet(video.id, obj.track_id, obj.first_frame,
                                        memory=num_maskmem != 0, masks=masks))
    finally:
        model.tracker.num_maskmem = saved_maskmem
        if predictor is not None:
            compat.release_predictor_autocast(predictor)
        model.train(was_training)
    if not masklets:
        raise ValueError(f"{dataset_dir}: no object is visible two frames before the end of its "
                         "video (DAVIS scores the frames after the prompt, the last one excluded)")
    return masklets


def score_masklets(masklets: list[Masklet], dataset_dir: str | Path) -> dict[str, float]:
    """Mean J, F and J&F over masklets against the GT. Each masklet is averaged over the
    frames the DAVIS 2017 semi-supervised evaluation counts: after the prompt frame, the
    video's last frame excluded (metrics.j_and_f.counted_frames)."""
    data = load_native(dataset_dir)
    tracks = {tr.id: tr for tr in data.tracks}
    js, fs = [], []
    for m in masklets:
        video = data.videos[m.video_id]
        frames = counted_frames(video.length, m.prompt_frame)
        # m.masks[i] is frame prompt_frame + 1 + i
        j, f = frames_j_and_f((m.masks[t - m.prompt_frame - 1], track_mask(tracks[m.track_id], video, t))
                              for t in frames)
        js.append(j)
        fs.append(f)
    j, f = float(np.mean(js)), float(np.mean(fs))
    return {"j": j, "f": f, "j_and_f": (j + f) / 2, "objects": len(js)}


def evaluate_tracking(model, dataset_dir: str | Path, **kwargs) -> dict[str, float]:
    """{"j", "f", "j_and_f", "objects"}; keyword arguments as propagate_dataset."""
    return score_masklets(propagate_dataset(model, dataset_dir, **kwargs), dataset_dir)


def predict_track_model(model, dataset_dir: str | Path) -> list[Masklet]:
    """What a track job predicts: every object with memory, and with memory disabled."""
    return (propagate_dataset(model, dataset_dir)
            + propagate_dataset(model, dataset_dir, num_maskmem=0))


def score_track_predictions(masklets: list[Masklet], dataset_dir: str | Path) -> dict[str, float]:
    """{"j_and_f", "j", "f", "j_and_f_no_memory", "objects"} of predict_track_model's output."""
    with_memory = score_masklets([m for m in masklets if m.memory], dataset_dir)
    without = score_masklets([m for m in masklets if not m.memory], dataset_dir)
    return {**with_memory, "j_and_f_no_memory": without["j_and_f"]}


def evaluate_track_model(model, dataset_dir: str | Path) -> dict[str, float]:
    return score_track_predictions(predict_track_model(model, dataset_dir), dataset_dir)
