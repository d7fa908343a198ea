"""The prediction program: a model on one new video (no ground truth), masklets and overlays.

    python -m sam3_video.predict --config FILE --run-dir DIR
    torchrun --standalone --nproc_per_node=N -m sam3_video.predict --config FILE --run-dir DIR

FILE is a PredictConfig (bare, or inside a job.json envelope). data.video is a folder of
frames (image files in name order) or an .mp4 (decoded with PyAV). model.init as for
evaluation: a checkpoint of ours, an upstream sam3.pt, or absent (the preset, random init
from `seed`). task detect: every phrase is grounded on every frame (EVAL_CHUNK_FRAMES at a
time, all phrases in one pass), and each phrase's per-frame detections are linked into
masklets as the evaluator links them (sam3_video.metrics.linking). task track: each of
data.prompts (a mask file, a box or clicks on one frame) is one object, propagated through
the video by sam3's Sam3TrackerPredictor as the tracker's evaluation runs it.

Writes DIR/predictions.json {"video", "frames", "width", "height", "fps", "masklets":
[{"id", "phrase", "score", "segmentations": [RLE or null per frame]}]}, DIR/overlays/
<video>.mp4 and <video>.png (every masklet drawn, sam3_video.overlays), DIR/results.json
(a summary) and one DIR/metrics.jsonl line {"step": 0, "predict/...": ...}. Under
torchrun, rank 0 does the work and the other ranks wait. Exit codes as the trainer's
(sam3_video.exit_codes); an unreadable video is a configuration error naming data.video.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from sam3_video import distributed, exit_codes, overlays
from sam3_video.config import (DATA_ROOT_ENV, FRAME_SUFFIXES, ConfigError, PredictConfig,
                               TrackPrompt, data_path, load_config_file, video_problem)
from sam3_video.data import masks as rle_masks
from sam3_video.failures import report_failure
from sam3_video.metrics.linking import link_detections
from sam3_video.metrics_log import MetricsLog
from sam3_video.run_layout import OVERLAYS_DIR, PREDICTIONS_FILE, RESULTS_FILE, write_json_atomic
from sam3_video.sampler import seed_everything
from sam3_video.tasks import get_task

FIELD = "data.video"
DEFAULT_FPS = 10.0      # a folder of frames has no rate of its own
SHEET_FRAMES = 16       # frames on the contact sheet
SHEET_COLUMNS = 4


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sam3_video.predict", description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="PredictConfig JSON or job.json envelope")
    p.add_argument("--run-dir", required=True, help="where predictions and overlays go")
    return p.parse_args(argv)


# ---------------------------------------------------------------- the video

@dataclass
class Video:
    """A video to read frame by frame, as often as needed (the overlays read it again)."""

    path: Path
    name: str            # as the config names it (relative to DATA_ROOT when it lies there)
    max_frames: int | None

    @property
    def stem(self) -> str:
        """The overlay files' name: the folder's or file's name, in safe characters."""
        stem = self.path.name if self.path.is_dir() else self.path.stem
        return re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip(".") or "video"

    def frames(self) -> Iterator[Image.Image]:
        """RGB frames in order, the first max_frames of them; ConfigError naming data.video
        (and the file) for a frame that does not decode or changes size."""
        source = self._folder_frames() if self.path.is_dir() else self._mp4_frames()
        size = None
        for t, frame in enumerate(source):
            if self.max_frames is not None and t >= self.max_frames:
                return
            if size is None:
                size = frame.size
            elif frame.size != size:
                raise ConfigError([f"{FIELD}: {self.name}: frame {t} is {frame.size[0]}x"
                                   f"{frame.size[1]}, the first is {size[0]}x{size[1]} (w x h)"])
            yield frame

    def _folder_frames(self) -> Iterator[Image.Image]:
        files = sorted(f for f in self.path.iterdir() if f.suffix.lower() in FRAME_SUFFIXES)
        for f in files:
            try:
                with Image.open(f) as image:
                    frame = image.convert("RGB")
            except OSError as err:  # PIL's UnidentifiedImageError is an OSError
                raise ConfigError([f"{FIELD}: {self.name}/{f.name}: not a readable image ({err})"]) from None
            yield frame

    def _mp4_frames(self) -> Iterator[Image.Image]:
        import av

        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise ConfigError([f"{FIELD}: {self.name}: the file has no video stream"])
                for frame in container.decode(video=0):
                    yield frame.to_image().convert("RGB")
        except av.FFmpegError as err:
            raise ConfigError([f"{FIELD}: {self.name}: not a readable video ({err})"]) from None

    def fps(self) -> float:
        """The .mp4's frame rate (DEFAULT_FPS when it declares none, or for a folder)."""
        if self.path.is_dir():
            return DEFAULT_FPS
        import av

        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
        except (av.FFmpegError, IndexError):
            return DEFAULT_FPS
        return float(rate) if rate else DEFAULT_FPS


def open_video(cfg: PredictConfig) -> Video:
    path = data_path(cfg.data.video, FIELD)
    problem = video_problem(path)
    if problem:
        raise ConfigError([f"{FIELD}: {cfg.data.video}: {problem}"])
    name = cfg.data.video
    root = os.environ.get(DATA_ROOT_ENV)
    if root and Path(root).resolve() in path.parents:  # job.json holds absolute paths
        name = str(path.relative_to(Path(root).resolve()))
    return Video(path, name, cfg.data.max_frames)


def chunks(frames: Iterator[Image.Image], size: int) -> Iterator[list[Image.Image]]:
    chunk = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# ---------------------------------------------------------------- detect

def clip_datapoint(frames: list[Image.Image], phrases: list[str]):
    """A sam3 Datapoint of `frames` asking every frame for every phrase, with no targets:
    frame t's queries are the phrases in order (query k of the stage is phrase k)."""
    from sam3.train.data.sam3_image_dataset import (Datapoint, FindQueryLoaded, Image as Sam3Image,
                                                    InferenceMetadata)

    width, height = frames[0].size
    queries = [FindQueryLoaded(
        query_text=phrase, image_id=t, object_ids_output=[], is_exhaustive=True,
        query_processing_order=t,
        inference_metadata=InferenceMetadata(
            coco_image_id=t, original_image_id=0, original_category_id=k + 1,
            original_size=(height, width), object_id=-1, frame_index=t))
        for t in range(len(frames)) for k, phrase in enumerate(phrases)]
    images = [Sam3Image(data=f, objects=[], size=(height, width)) for f in frames]
    return Datapoint(find_queries=queries, images=images, raw_images=list(frames))


@torch.no_grad()
def detect(model: torch.nn.Module, video: Video, phrases: list[str], image_size: int,
           score_threshold: float, max_masklets: int | None = None,
           ) -> tuple[list[dict], int, tuple[int, int]]:
    """(masklets, frame count, (width, height)): the detector on every frame, EVAL_CHUNK_FRAMES
    at a time, each phrase's detections linked into masklets over the whole video; the
    `max_masklets` best of them (all phrases together), by phrase, then by score."""
    from sam3_video.backbone.vision import EVAL_CHUNK_FRAMES
    from sam3_video.data import collate, move_to
    from sam3_video.data.video_dataset import video_transforms
    from sam3_video.detector.evaluate import frame_detections

    transform = video_transforms(image_size)[0]
    device = next(model.parameters()).device
    joint = getattr(model, "supervise_joint_box_scores", True)  # presence already in the logits
    per_phrase: list[list[list[dict]]] = [[] for _ in phrases]  # phrase -> frame -> detections
    size = None
    for chunk in chunks(video.frames(), EVAL_CHUNK_FRAMES):
        size = chunk[0].size
        outputs = model(move_to(collate([transform(clip_datapoint(chunk, phrases))]), device))
        for out in outputs:  # one output per frame
            for k in range(len(phrases)):
                per_phrase[k].append([
                    {"mask": rle_masks.to_rle(mask), "score": score}
                    for _, score, _, mask in frame_detections(out, k, *size, presence_in_logits=joint)])
        del outputs
    if size is None:
        raise ConfigError([f"{FIELD}: {video.name}: no frames to read"])
    linked = [(k, m) for k in range(len(phrases))
              for m in link_detections(per_phrase[k], video_id=0, category_id=k + 1,
                                       score_threshold=score_threshold)]
    linked.sort(key=lambda km: -km[1]["score"])
    kept = sorted(linked[:max_masklets], key=lambda km: (km[0], -km[1]["score"]))
    masklets = [{"id": i + 1, "phrase": phrases[k], "score": round(m["score"], 4),
                 "segmentations": m["segmentations"]} for i, (k, m) in enumerate(kept)]
    return masklets, len(per_phrase[0]), size


# ---------------------------------------------------------------- track

def frame_tensor(frame: Image.Image, image_size: int) -> torch.Tensor:
    """[3, S, S] float in [-1, 1]: what tracker.clips.load_frame makes of a frame file."""
    array = np.asarray(frame.resize((image_size, image_size), Image.BILINEAR), dtype=np.float32)
    return (torch.from_numpy(array / 255.0).permute(2, 0, 1) - 0.5) / 0.5


def prompt_mask(prompt: TrackPrompt, field: str, size: tuple[int, int]) -> np.ndarray:
    """The prompt's mask file as a bool (height, width) array: its nonzero pixels."""
    try:
        with Image.open(data_path(prompt.mask, field)) as image:
            mask = np.asarray(image.convert("L")) > 0
    except OSError as err:
        raise ConfigError([f"{field}: {prompt.mask}: not a readable image ({err})"]) from None
    if mask.shape != (size[1], size[0]):
        raise ConfigError([f"{field}: {prompt.mask} is {mask.shape[1]}x{mask.shape[0]}, the "
                           f"video's frames are {size[0]}x{size[1]} (w x h)"])
    if not mask.any():
        raise ConfigError([f"{field}: {prompt.mask} has no nonzero pixel (no object)"])
    return mask


def add_prompt(predictor, state, obj_id: int, prompt: TrackPrompt, index: int,
               size: tuple[int, int]) -> None:
    """One object's prompt into a Sam3TrackerPredictor state; boxes and clicks go in as
    fractions of the frame (the predictor scales them to the model's input)."""
    width, height = size
    if prompt.mask is not None:
        mask = prompt_mask(prompt, f"data.prompts.{index}.mask", size)
        predictor.add_new_mask(state, frame_idx=prompt.frame, obj_id=obj_id,
                               mask=torch.from_numpy(mask))
    elif prompt.box is not None:
        x, y, w, h = prompt.box
        box = torch.tensor([x / width, y / height, (x + w) / width, (y + h) / height]).clamp(0, 1)
        predictor.add_new_points_or_box(state, frame_idx=prompt.frame, obj_id=obj_id, box=box)
    else:
        points = torch.tensor([[x / width, y / height] for x, y, _ in prompt.points]).clamp(0, 1)
        labels = torch.tensor([int(label) for _, _, label in prompt.points], dtype=torch.int32)
        predictor.add_new_points_or_box(state, frame_idx=prompt.frame, obj_id=obj_id,
                                        points=points, labels=labels)


def frame_features(model: torch.nn.Module, images: torch.Tensor):
    """tracker.evaluate.VideoFeatures of decoded frames [T, 3, S, S] (it reads a dataset's
    files itself): the backbone EVAL_CHUNK_FRAMES frames at a time, every frame's kept."""
    from sam3_video.backbone.vision import EVAL_CHUNK_FRAMES
    from sam3_video.tracker.evaluate import VideoFeatures

    feats = VideoFeatures.__new__(VideoFeatures)
    feats.images = images
    parts = [model.tracker_features(images[i:i + EVAL_CHUNK_FRAMES])
             for i in range(0, len(images), EVAL_CHUNK_FRAMES)]
    feats.features = {key: [torch.cat([p[key][level] for p in parts])
                            for level in range(len(parts[0][key]))]
                      for key in ("backbone_fpn", "vision_pos_enc")}
    return feats


@torch.no_grad()
def track(model: torch.nn.Module, video: Video, prompts: list[TrackPrompt], image_size: int,
          ) -> tuple[list[dict], int, tuple[int, int]]:
    """(masklets, frame count, (width, height)): each prompt is one object, propagated by
    sam3's Sam3TrackerPredictor (as the tracker's evaluation runs it) forwards from the
    first prompted frame to the end, and backwards to frame 0 when that is later."""
    from sam3_video import compat
    from sam3_video.tracker.evaluate import build_predictor

    tensors, size = [], None
    for frame in video.frames():
        size = size or frame.size
        tensors.append(frame_tensor(frame, image_size))
    if size is None:
        raise ConfigError([f"{FIELD}: {video.name}: no frames to read"])
    num_frames = len(tensors)
    for i, prompt in enumerate(prompts):
        if prompt.frame >= num_frames:
            raise ConfigError([f"data.prompts.{i}.frame: {prompt.frame} is past the video's "
                               f"last frame ({num_frames - 1})"])
    device = next(model.parameters()).device
    feats = frame_features(model, torch.stack(tensors).to(device))
    del tensors
    predictor = build_predictor(model)
    segmentations = {i + 1: [None] * num_frames for i in range(len(prompts))}
    scores: dict[int, list[float]] = {i + 1: [] for i in range(len(prompts))}
    try:
        # One state per object, as the tracker's evaluation does: with several objects
        # prompted on different frames, sam3 0.1.4's predictor consolidates the others'
        # outputs through Sam3TrackerBase.track_step with a `gt_masks` it does not take.
        for i, prompt in enumerate(prompts):
            obj_id = i + 1
            state = predictor.init_state(video_height=size[1], video_width=size[0],
                                         num_frames=num_frames, cached_features=feats.frame_cache(),
                                         offload_state_to_cpu=device.type == "cpu")
            state["device"] = device
            add_prompt(predictor, state, obj_id, prompt, i, size)
            for reverse in ((False, True) if prompt.frame > 0 else (False,)):
                for t, _, _, video_res, obj_scores in predictor.propagate_in_video(
                        state, start_frame_idx=prompt.frame, max_frame_num_to_track=num_frames,
                        reverse=reverse, tqdm_disable=True, propagate_preflight=True):
                    mask = (video_res[0, 0] > 0).cpu().numpy()
                    segmentations[obj_id][t] = rle_masks.frame_record(mask)[0]
                    scores[obj_id].append(float(obj_scores[0].float().sigmoid().max()))
    finally:
        compat.release_predictor_autocast(predictor)
    masklets = [{"id": obj_id, "phrase": prompts[obj_id - 1].label or f"object {obj_id}",
                 "score": round(float(np.mean(scores[obj_id])), 4) if scores[obj_id] else 0.0,
                 "segmentations": segmentations[obj_id]} for obj_id in segmentations]
    return masklets, num_frames, size


# ---------------------------------------------------------------- overlays

def masklet_label(masklet: dict) -> str:
    """The text drawn on a masklet; it also picks the masklet's colour."""
    return f"#{masklet['id']} {masklet['phrase']} {masklet['score']:.2f}"


def frame_masks(masklets: list[dict], t: int, width: int, height: int) -> list[tuple[np.ndarray, str]]:
    return [(rle_masks.decode(m["segmentations"][t], height, width), masklet_label(m))
            for m in masklets if m["segmentations"][t] is not None]


def write_overlays(video: Video, masklets: list[dict], num_frames: int, size: tuple[int, int],
                   fps: float, out_dir: Path) -> list[Path]:
    """out_dir/<video>.mp4 (every frame, every masklet drawn) and out_dir/<video>.png (a
    contact sheet of SHEET_FRAMES frames spread over the video). Reads the video again, so
    only the sheet's frames stay in memory."""
    out_dir.mkdir(parents=True, exist_ok=True)
    width, height = size
    shown = set(overlays.sheet_indices(num_frames, SHEET_FRAMES))
    sheet_frames, sheet_masks = [], []

    def drawn() -> Iterator[Image.Image]:
        for t, frame in enumerate(video.frames()):
            if t >= num_frames:
                return
            drawn_masks = frame_masks(masklets, t, width, height)
            if t in shown:
                sheet_frames.append(frame)
                sheet_masks.append(drawn_masks)
            yield overlays.draw_masks(frame, drawn_masks)

    mp4, png = out_dir / f"{video.stem}.mp4", out_dir / f"{video.stem}.png"
    # Written under a hidden name, then renamed: the API never serves half a file.
    overlays.write_mp4(partial(mp4), drawn(), fps)
    os.replace(partial(mp4), mp4)
    sheet = overlays.contact_sheet(sheet_frames, sheet_masks, columns=SHEET_COLUMNS,
                                   max_frames=len(sheet_frames))
    sheet.save(partial(png))
    os.replace(partial(png), png)
    return [mp4, png]


def partial(path: Path) -> Path:
    """Where `path` is written before it is complete (same suffix: PyAV and PIL pick the
    format by it; a leading dot: the API lists and serves no such name)."""
    return path.with_name(f".partial-{path.name}")


# ---------------------------------------------------------------- the program

def predict(cfg: PredictConfig, run_dir: Path, device: torch.device) -> dict[str, float]:
    task = get_task(cfg)
    video = open_video(cfg)
    seed_everything(cfg.seed)  # random init (no model.init) is then reproducible
    model = task.build_model().to(device).eval()
    started = time.perf_counter()
    if cfg.task == "track":
        masklets, num_frames, (width, height) = track(model, video, cfg.data.prompts,
                                                      task.image_size)
    else:
        masklets, num_frames, (width, height) = detect(
            model, video, cfg.data.phrases, task.image_size, cfg.score_threshold, cfg.max_masklets)
    seconds = time.perf_counter() - started
    fps = cfg.data.fps or video.fps()
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / PREDICTIONS_FILE, {
        "video": video.name, "frames": num_frames, "width": width, "height": height,
        "fps": fps, "masklets": masklets})
    files = write_overlays(video, masklets, num_frames, (width, height), fps,
                           run_dir / OVERLAYS_DIR)
    metrics = {"frames": float(num_frames), "masklets": float(len(masklets)),
               "seconds": seconds, "frames_per_s": num_frames / seconds if seconds > 0 else 0.0}
    init = cfg.model.init
    write_json_atomic(run_dir / RESULTS_FILE, {
        "metrics": metrics,
        "task": cfg.task,
        "video": video.name,
        "frames": num_frames,
        "num_masklets": len(masklets),
        "masklets_per_phrase": {p: sum(m["phrase"] == p for m in masklets) for p in cfg.data.phrases},
        "prompts": len(cfg.data.prompts),
        "overlays": [f.name for f in files],
        "weights": init.path if init is not None and init.path else None,
        "predict_seconds": seconds,
        "config": cfg.model_dump(mode="json"),
    })
    log = MetricsLog(run_dir, tensorboard=False)
    log.write(0, {f"predict/{k}": v for k, v in metrics.items()})
    log.close()
    return metrics


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config_file(args.config, "predict")
        get_task(cfg).check()
        open_video(cfg)
    except ConfigError as err:
        return report_failure(err)
    if cfg.gpus > 0 and not torch.cuda.is_available():
        print(f"gpus={cfg.gpus} but no CUDA device is visible to this process", file=sys.stderr)
        return 1
    dist = distributed.init(use_cuda=cfg.gpus > 0)
    try:
        if dist.is_main:
            metrics = predict(cfg, Path(args.run_dir), dist.device)
            print(json.dumps(metrics), flush=True)
        distributed.barrier(dist)
        return exit_codes.OK
    except (ConfigError, RuntimeError, MemoryError) as err:  # e.g. weights that do not fit
        code = report_failure(err)
        if code is None:
            raise
        return code
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    sys.exit(main())
