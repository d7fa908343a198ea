"""Job specs: the one source of truth for training, evaluation and prediction jobs.

Used by the trainer (`sam3_video.train`), the evaluator and the API, which validates a
POSTed job with these same models. Unknown keys are errors; every error names its field.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Callable, Literal

from pydantic import (BaseModel, ConfigDict, Field, StringConstraints, ValidationError,
                      model_validator)

from sam3_video.backbone.presets import PATCH_SIZE, preset_dims, training_defaults

DATA_ROOT_ENV = "DATA_ROOT"
RUNS_ROOT_ENV = "RUNS_ROOT"


class ConfigError(ValueError):
    """A job spec or a path in it is wrong. `problems` lists one 'field: message' per error."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


# Upper bounds no real job needs to exceed: each caps what one job can cost a worker
# (CPU, memory, disk, retries) and keeps integers inside a 32-bit database column.
MAX_ID = 2**31 - 1
MAX_STEPS = 10_000_000           # 10 M optimiser steps: months of GPU time
MAX_GRAD_ACCUM = 1024
MAX_BATCH = 256                  # clips per GPU per step
MAX_LOADER_WORKERS = 64          # DataLoader processes per rank
MAX_IMAGE_SIZE = 2016            # 2 x sam3's 1008 px
MAX_STRIDE = 64                  # frames skipped between sampled frames
MAX_KEEP_LAST = 100              # checkpoints kept per job
MAX_SEED = 2**32 - 1             # numpy's seed range
MAX_EVAL_FRAMES = 100_000
MAX_PATTERNS = 64                # module-name patterns per list (model.freeze, model.lora)
MAX_PATTERN_LEN = 200            # characters per pattern
MAX_LORA_RANK = 256
MAX_LORA_ALPHA = 4096


class FieldProblem(ValueError):
    """A cross-section rule broken by one field: describe_errors names `field` (dotted,
    relative to the model that raises it) instead of the model's own location."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# Presets whose ViT position table is TILED to the image (sam3's ViT, tile_abs_pos=True):
# sam3.model.vitdet.get_abs_pos repeats the pretrain-size table (336 px = 24 x 24 patches
# for sam3) and crops it to the image's patch grid, so it tiles whole only when the grid
# is a multiple of the table: image_size a multiple of 336 (1008 = 3 x 336). Any other
# multiple of 14 cuts the last tile, and the frame's right and bottom patches get position
# embeddings the pretrained weights never saw at those positions.
TILED_POSITION_PRESETS = ("sam3",)


def image_size_problem(preset: str, image_size: int | None) -> str | None:
    """Why `image_size` does not suit `preset` (None: it does, or it is the preset's own)."""
    if image_size is None or preset not in TILED_POSITION_PRESETS:
        return None
    table = preset_dims(preset).pretrain_image_size
    if image_size % table:
        return (f"{image_size} is not a multiple of {table} for preset {preset!r}: its ViT "
                f"tiles a {table} px ({table // PATCH_SIZE}x{table // PATCH_SIZE}-patch) "
                f"position table over the image, whole only at multiples of {table} "
                f"(e.g. {table * max(1, round(image_size / table))})")
    return None


def _check_image_size(cfg):
    problem = image_size_problem(cfg.model.preset, cfg.data.image_size)
    if problem:
        raise FieldProblem("data.image_size", problem)
    return cfg


class WeightsRef(Strict):
    """Initial weights: a file, a previous job's checkpoint, or neither (random init).

    `path` is a local upstream sam3.pt or a checkpoint of ours, relative to DATA_ROOT
    (an absolute path must lie under DATA_ROOT, and never under RUNS_ROOT: other jobs'
    files are reached through `job_id` only, which checks the caller may see that job).
    `job_id` names a previous job; the service resolves it to that job's checkpoint file
    where the spec is used (the stored spec keeps `job_id` and no `path`).
    """

    path: str | None = None
    job_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    checkpoint: str = Field(default="latest", description="checkpoint name of job_id, or 'latest'")


# A glob pattern (fnmatch, case-sensitive) over dotted parameter or module names, e.g.
# "backbone.vision_backbone.trunk.blocks.0.*".
NamePattern = Annotated[str, Field(min_length=1, max_length=MAX_PATTERN_LEN)]
NamePatterns = Annotated[list[NamePattern], Field(max_length=MAX_PATTERNS)]


class FreezeConfig(Strict):
    """Parameters that do not train (requires_grad False; the optimiser skips them).
    A pattern that matches no parameter of the built model is a config error."""

    vision_backbone: bool = False
    text_encoder: bool = False
    include: NamePatterns = Field(
        default=[], description="parameter-name globs to freeze, e.g. "
                                "'backbone.vision_backbone.trunk.blocks.0.*'")
    exclude: NamePatterns = Field(
        default=[], description="parameter-name globs that train even though include or "
                                "a boolean above would freeze them")


# The ViT trunk's attention and MLP linears, and the DETR decoder's feed-forward linears:
# plain nn.Linear modules only (an nn.MultiheadAttention reads its out_proj's weight
# directly, bypassing an adapter on it).
DEFAULT_LORA_TARGETS = [
    "backbone.vision_backbone.trunk.blocks.*.attn.qkv",
    "backbone.vision_backbone.trunk.blocks.*.attn.proj",
    "backbone.vision_backbone.trunk.blocks.*.mlp.fc1",
    "backbone.vision_backbone.trunk.blocks.*.mlp.fc2",
    "transformer.decoder.layers.*.linear1",
    "transformer.decoder.layers.*.linear2",
]
# A track job's default (task "track" fills it in when model.lora.targets is unset): the
# tracker's memory attention (self and cross attention, feed-forward) and the two-way
# transformer of its SAM mask decoder (attention and MLP). The shared ViT trunk stays as
# the detector learned it.
DEFAULT_TRACK_LORA_TARGETS = [
    "tracker.transformer.encoder.layers.*.self_attn.*_proj",
    "tracker.transformer.encoder.layers.*.cross_attn_image.*_proj",
    "tracker.transformer.encoder.layers.*.linear1",
    "tracker.transformer.encoder.layers.*.linear2",
    "tracker.sam_mask_decoder.transformer.*_proj",
    "tracker.sam_mask_decoder.transformer.layers.*.mlp.lin1",
    "tracker.sam_mask_decoder.transformer.layers.*.mlp.lin2",
]


class LoraConfig(Strict):
    """LoRA adapters (through peft) on the nn.Linear modules named by `targets`: the base
    model is frozen, the adapters train (and the base parameters `train` names).
    Checkpoints then hold only what trains; export merges the adapters into the base."""

    rank: int = Field(default=8, ge=1, le=MAX_LORA_RANK)
    alpha: float = Field(default=16.0, gt=0, le=MAX_LORA_ALPHA,
                         description="scale of the adapters' update: alpha / rank")
    dropout: float = Field(default=0.0, ge=0, lt=1, description="dropout on the adapters' input")
    targets: Annotated[list[NamePattern], Field(min_length=1, max_length=MAX_PATTERNS)] = Field(
        default=DEFAULT_LORA_TARGETS,
        description="module-name globs of the nn.Linear layers that get adapters; unset: "
                    "the task's default (detect: the ViT trunk's attention and MLP and the "
                    "decoder's feed-forward; track: the tracker's memory attention and its "
                    "mask decoder's transformer)")
    train: NamePatterns = Field(
        default=[], description="parameter-name globs of the base that train in full next to "
                                "the adapters (e.g. 'dot_prod_scoring.*'); model.freeze "
                                "still applies to them")


class ModelConfig(Strict):
    preset: Literal["tiny", "sam3"] = "tiny"
    init: WeightsRef | None = None
    freeze: FreezeConfig = FreezeConfig()
    lora: LoraConfig | None = Field(default=None, description="None: train the model itself")
    activation_checkpointing: bool = Field(
        default=True, description="recompute the ViT trunk's block activations in the "
        "backward pass instead of keeping them (sam3's own default): far less memory at "
        "1008 px for one more trunk forward per step; false trades that memory for speed")


class AugmentConfig(Strict):
    """Training clips only (evaluation never augments): one random draw per clip, the same
    on every frame. Defaults are upstream sam3's fine-tuning transforms (RandomResizeAPI
    square to 480..992 px in 32 px steps, PadToSizeAPI to 1008; no flip), as fractions of
    image_size; see sam3_video.data.augment."""

    enabled: bool = Field(default=False, description="false: every frame is only resized "
                          "to image_size x image_size. Default per preset: sam3 true "
                          "(upstream's recipe), tiny false (its short random-init runs learn "
                          "less in their few hundred steps with it)")
    min_scale: float = Field(default=480 / 1008, gt=0, le=1,
                             description="smallest side of the resized square, as a fraction "
                                         "of image_size (upstream: 480 px at 1008)")
    max_scale: float = Field(default=1.0, gt=0, le=1,
                             description="largest side, as a fraction of image_size; the "
                                         "rest of the frame is padding")
    size_step: int | None = Field(default=None, ge=1, le=MAX_IMAGE_SIZE,
                                  description="pixels between the sides drawn from; None: "
                                              "upstream's 32 px at 1008, scaled to image_size")
    hflip: float = Field(default=0.0, ge=0, le=1,
                         description="probability of mirroring a clip (upstream: 0; mind "
                                     "phrases like 'left hand')")

    @model_validator(mode="after")
    def _scale_range(self):
        if self.min_scale > self.max_scale:
            raise FieldProblem("min_scale", f"must be <= max_scale ({self.max_scale:g})")
        return self


class DataConfig(Strict):
    train: str = Field(description="training dataset directory, relative to DATA_ROOT")
    val: str | None = Field(default=None, description="held-out dataset directory for evaluation")
    frames_per_clip: int = Field(default=4, ge=1, le=64)
    frame_stride_min: int = Field(default=1, ge=1, le=MAX_STRIDE)
    frame_stride_max: int = Field(default=1, ge=1, le=MAX_STRIDE)
    random_reverse_time: bool = False
    image_size: int | None = Field(default=None, ge=14, le=MAX_IMAGE_SIZE,
                                   description="None: the preset's size")
    batch_size_per_gpu: int = Field(default=1, ge=1, le=MAX_BATCH)
    num_workers: int = Field(default=0, ge=0, le=MAX_LOADER_WORKERS)
    negative_ratio: float = Field(
        default=0.3, ge=0, le=1,
        description="detect: fraction of training clips asked for a phrase absent from "
                    "their video (no target; teaches presence). 0: positives only")
    augment: AugmentConfig = AugmentConfig()

    @model_validator(mode="after")
    def _stride_range(self):
        if self.frame_stride_max < self.frame_stride_min:
            raise ValueError("frame_stride_max must be >= frame_stride_min")
        if self.image_size is not None and self.image_size % 14:
            raise ValueError("image_size must be a multiple of 14 (the ViT patch size)")
        return self


class OptimConfig(Strict):
    """AdamW rates per module (sam3_video.optim.param_groups). A field a job leaves unset
    gets its preset's default (sam3_video.backbone.presets.TRAINING_DEFAULTS: `sam3` uses
    upstream's fine-tuning values, `tiny` the defaults written here)."""

    lr: float = Field(default=1e-4, gt=0, le=1,
                      description="everything outside the vision and language backbones "
                                  "(encoder, decoder, heads, tracker); sam3: 8e-5")
    vision_lr: float | None = Field(default=None, gt=0, le=1,
                                    description="backbone.vision_backbone (ViT trunk, before "
                                                "layer_decay, and neck); None: lr; sam3: 2.5e-5")
    language_lr: float | None = Field(default=None, gt=0, le=1,
                                      description="backbone.language_backbone (text encoder); "
                                                  "None: lr; sam3: 5e-6")
    weight_decay: float = Field(default=0.05, ge=0, le=10, description="sam3: 0.1")
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.9, 0.999)
    layer_decay: float | None = Field(
        default=None, gt=0, le=1,
        description="ViT trunk layer-wise decay: block i of D gets vision_lr * decay^(D - i), "
                    "patch_embed and ln_pre decay^(D + 1), pos_embed none (as upstream); "
                    "None or 1: off; sam3: 0.9")


class ScheduleConfig(Strict):
    """Multiplier of every group's own rate per step; unset fields take the preset's default
    (sam3: inverse_sqrt, 20 warmup and 20 cooldown steps, as upstream)."""

    name: Literal["cosine", "inverse_sqrt", "constant"] = Field(
        default="cosine", description="inverse_sqrt: sqrt(warmup_steps / step) after warmup")
    warmup_steps: int = Field(default=0, ge=0, le=MAX_STEPS, description="linear warmup")
    cooldown_steps: int = Field(default=0, ge=0, le=MAX_STEPS,
                                description="the last N steps fall linearly towards 0")
    min_lr_ratio: float = Field(default=0.0, ge=0, le=1)


def fill_preset_defaults(cfg: "TrainConfig") -> "TrainConfig":
    """Give each field of a section ("optim", "schedule", "data.augment") that `cfg` leaves
    unset its preset's default (sam3_video.backbone.presets.TRAINING_DEFAULTS). Filled
    fields count as set, so a stored spec (model_dump) re-validates to the same values."""
    for section, defaults in training_defaults(cfg.model.preset).items():
        names = section.split(".")
        chain = [cfg]
        for name in names:
            chain.append(getattr(chain[-1], name))
        unset = {k: v for k, v in defaults.items() if k not in chain[-1].model_fields_set}
        if not unset:
            continue
        part = chain[-1].model_copy()  # never mutate a caller's instance
        for name, value in unset.items():
            setattr(part, name, value)  # validate_assignment checks the table's values
        # put the copy back, copying each parent on the way up; no re-validation of the whole
        for parent, name in zip(reversed(chain[:-1]), reversed(names)):
            if parent is not cfg:
                parent = parent.model_copy()
            object.__setattr__(parent, name, part)
            parent.model_fields_set.add(name)
            part = parent
    return cfg


class TrackConfig(Strict):
    """Tracker (memory) training: prompt mix per clip, SAM2-style."""

    prob_mask: float = Field(default=0.5, ge=0, le=1)
    prob_box: float = Field(default=0.25, ge=0, le=1)
    prob_click: float = Field(default=0.25, ge=0, le=1)
    correction_clicks: int = Field(default=7, ge=0, le=32)
    max_correction_frames: int = Field(default=2, ge=0, le=64)
    max_objects: int = Field(default=3, ge=1, le=64)
    train_backbone_neck: bool = True
    train_trunk: bool = Field(default=False, description="also train the shared ViT trunk")
    max_cond_frames: int = Field(default=2, ge=1, le=64, description="frame 0 plus up to N-1 random prompted frames")
    prob_correction_from_gt: float = Field(default=0.1, ge=0, le=1)
    num_maskmem: int = Field(default=7, ge=1, le=16, description="memory frames (1 prompt + N-1 recent)")

    @model_validator(mode="after")
    def _probs_sum_to_one(self):
        total = self.prob_mask + self.prob_box + self.prob_click
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"prob_mask + prob_box + prob_click must be 1 (got {total:g})")
        return self


class TrainConfig(Strict):
    task: Literal["detect", "track"] = "detect"
    model: ModelConfig = ModelConfig()
    data: DataConfig
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    track: TrackConfig = TrackConfig()
    max_steps: int = Field(ge=1, le=MAX_STEPS)
    grad_accum_steps: int = Field(default=1, ge=1, le=MAX_GRAD_ACCUM)
    grad_clip: float | None = Field(default=0.1, gt=0, le=1e6)
    amp: Literal["auto", "bf16", "fp16", "off"] = Field(
        default="auto", description="auto: bf16 on CUDA, off on CPU")
    checkpoint_every: int = Field(default=100, ge=1, le=MAX_STEPS)
    keep_last: int = Field(default=3, ge=1, le=MAX_KEEP_LAST)
    eval_every: int | None = Field(default=None, ge=1, le=MAX_STEPS)
    log_every: int = Field(default=1, ge=1, le=MAX_STEPS)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    gpus: int = Field(default=1, ge=0, le=64, description="0 runs on CPU processes")
    nodes: int = Field(default=1, ge=1, le=1024,
                       description="machines the job spans (gpus is per node); more than 1 "
                                   "runs through a SLURM worker")

    @model_validator(mode="after")
    def _image_size_fits_preset(self):
        return _check_image_size(self)

    @model_validator(mode="after")
    def _preset_training_defaults(self):
        return fill_preset_defaults(self)

    @model_validator(mode="after")
    def _task_lora_targets(self):
        return fill_task_lora_targets(self)


def fill_task_lora_targets(cfg: "TrainConfig") -> "TrainConfig":
    """A track job's model.lora without `targets` gets DEFAULT_TRACK_LORA_TARGETS (the
    field's own default names detector modules). Filled, the field counts as set, so a
    stored spec re-validates to the same targets."""
    lora = cfg.model.lora
    if cfg.task != "track" or lora is None or "targets" in lora.model_fields_set:
        return cfg
    lora = lora.model_copy()  # never mutate a caller's instance
    lora.targets = list(DEFAULT_TRACK_LORA_TARGETS)
    model = cfg.model.model_copy()
    object.__setattr__(model, "lora", lora)
    object.__setattr__(cfg, "model", model)
    return cfg


class EvalDataConfig(Strict):
    dataset: str = Field(description="dataset directory with ground truth, relative to DATA_ROOT")
    frames_per_clip: int | None = Field(default=None, ge=1, le=MAX_EVAL_FRAMES,
                                        description="None: every frame")
    image_size: int | None = Field(default=None, ge=14, le=MAX_IMAGE_SIZE)


class EvalConfig(Strict):
    task: Literal["detect", "track"] = "detect"
    model: ModelConfig = ModelConfig()
    data: EvalDataConfig
    score_threshold: float = Field(default=0.5, ge=0, le=1)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    gpus: int = Field(default=1, ge=0, le=64)

    @model_validator(mode="after")
    def _image_size_fits_preset(self):
        return _check_image_size(self)


MAX_PHRASES = 64                 # noun phrases one predict job asks for
MAX_PHRASE_LEN = 200             # characters per phrase
MAX_FPS = 240.0
MAX_MASKLETS = 10_000
MAX_PROMPTS = 64                 # objects one track job follows
MAX_PROMPT_POINTS = 64           # clicks per track prompt

# surrounding blanks are dropped, so a blank phrase is an empty one (an error)
Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                          max_length=MAX_PHRASE_LEN)]


class TrackPrompt(Strict):
    """One object for the tracker: where it is on one frame, given as exactly one of a
    mask file, a box or clicks (pixels of the video's own frames)."""

    frame: int = Field(default=0, ge=0, le=MAX_EVAL_FRAMES, description="the prompted frame")
    mask: str | None = Field(default=None, description="an image file (PNG) the size of a "
                             "frame, relative to DATA_ROOT; nonzero pixels are the object")
    box: list[float] | None = Field(default=None, min_length=4, max_length=4,
                                    description="[x, y, width, height] in pixels")
    points: list[Annotated[list[float], Field(min_length=3, max_length=3)]] | None = Field(
        default=None, min_length=1, max_length=MAX_PROMPT_POINTS,
        description="clicks [x, y, label] in pixels; label 1: on the object, 0: not on it")
    label: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                            max_length=MAX_PHRASE_LEN)] | None = Field(
        default=None, description="the name drawn on the overlays; None: 'object N'")

    @model_validator(mode="after")
    def _one_kind(self):
        given = [k for k in ("mask", "box", "points") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of mask, box or points"
                             + (f" (got {', '.join(given)})" if given else ""))
        if self.box is not None and (min(self.box) < 0 or self.box[2] <= 0 or self.box[3] <= 0):
            raise FieldProblem("box", "x and y must be >= 0, width and height > 0")
        if self.points is not None and any(p[2] not in (0, 1) or min(p[:2]) < 0 for p in self.points):
            raise FieldProblem("points", "each point is [x >= 0, y >= 0, label 0 or 1]")
        return self


class PredictDataConfig(Strict):
    video: str = Field(description="the video, relative to DATA_ROOT: a folder of frames "
                                   "(images, in file-name order) or an .mp4 file")
    phrases: Annotated[list[Phrase], Field(max_length=MAX_PHRASES)] = Field(
        default=[], description="detect: the noun phrases to find on every frame")
    prompts: list[TrackPrompt] = Field(default=[], max_length=MAX_PROMPTS,
                                       description="track: the objects to propagate, one "
                                                   "prompt each")
    max_frames: int | None = Field(default=None, ge=1, le=MAX_EVAL_FRAMES,
                                   description="only the first N frames; None: every frame")
    image_size: int | None = Field(default=None, ge=14, le=MAX_IMAGE_SIZE,
                                   description="None: the preset's size")
    fps: float | None = Field(default=None, gt=0, le=MAX_FPS,
                              description="frame rate of the overlay video; None: an .mp4's "
                                          "own rate, 10 for a folder of frames")


class PredictConfig(Strict):
    """A model on one new video (no ground truth): masklets and overlays a person can look at."""

    task: Literal["detect", "track"] = "detect"
    model: ModelConfig = ModelConfig()
    data: PredictDataConfig
    score_threshold: float = Field(default=0.5, ge=0, le=1,
                                   description="a detection starts a masklet at this score "
                                               "(as evaluation links detections)")
    max_masklets: int | None = Field(default=None, ge=1, le=MAX_MASKLETS,
                                     description="keep only the N highest-scoring masklets "
                                                 "(all phrases together); None: all")
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    gpus: int = Field(default=1, ge=0, le=64)

    @model_validator(mode="after")
    def _image_size_fits_preset(self):
        return _check_image_size(self)

    @model_validator(mode="after")
    def _task_inputs(self):
        if self.task == "track":
            if not self.data.prompts:
                raise FieldProblem("data.prompts", "task 'track' needs at least one prompt "
                                                   "(a mask, box or points on a frame)")
            if self.data.phrases:
                raise FieldProblem("data.phrases", "task 'track' follows prompts, not phrases")
            if self.data.max_frames is not None:
                for i, prompt in enumerate(self.data.prompts):
                    if prompt.frame >= self.data.max_frames:
                        raise FieldProblem(f"data.prompts.{i}.frame", f"{prompt.frame} is past "
                                           f"data.max_frames ({self.data.max_frames})")
        else:
            if not self.data.phrases:
                raise FieldProblem("data.phrases", "task 'detect' needs at least one noun phrase")
            if self.data.prompts:
                raise FieldProblem("data.prompts", "task 'detect' takes phrases; prompts are "
                                                   "for task 'track'")
        return self


JobKind = Literal["train", "eval", "predict"]
JobConfig = TrainConfig | EvalConfig | PredictConfig
CONFIG_BY_KIND: dict[str, type[Strict]] = {"train": TrainConfig, "eval": EvalConfig,
                                           "predict": PredictConfig}


def describe_errors(err: ValidationError, prefix: str = "") -> list[str]:
    """One 'dotted.field: message' line per pydantic error."""
    lines = []
    for e in err.errors():
        parts, msg = [prefix, *e["loc"]], e["msg"]
        problem = e.get("ctx", {}).get("error")
        if isinstance(problem, FieldProblem):  # a model's rule that one field breaks
            parts, msg = [*parts, problem.field], problem.message
        loc = ".".join(str(p) for p in parts if p != "")
        lines.append(f"{loc or '(root)'}: {msg}")
    return lines


def parse_config(kind: str, data: dict) -> JobConfig:
    if kind not in CONFIG_BY_KIND:
        raise ConfigError([f"kind: must be one of {sorted(CONFIG_BY_KIND)}, got {kind!r}"])
    try:
        return CONFIG_BY_KIND[kind].model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe_errors(err)) from None


def load_config_file(path: str | os.PathLike, kind: str) -> JobConfig:
    """Read a job file: either a bare config or a job envelope {"kind", "config", ...}."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except json.JSONDecodeError as err:
        raise ConfigError([f"{path}: not valid JSON ({err})"]) from None
    if isinstance(data, dict) and "config" in data and "kind" in data:
        if data["kind"] != kind:
            raise ConfigError([f"kind: this program runs {kind!r} jobs, the file holds {data['kind']!r}"])
        data = data["config"]
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: expected a JSON object"])
    return parse_config(kind, data)


def resolve_under(path: str, field: str, roots: dict[str, str | None]) -> Path:
    """Resolve a config path: relative paths against the first root, absolute ones must lie
    under one of the roots (after following symlinks). `roots` maps env-var name -> dir."""
    usable = {name: Path(r).resolve() for name, r in roots.items() if r}
    if not usable:
        raise ConfigError([f"{field}: {' or '.join(roots)} is not set"])
    first = next(iter(usable.values()))
    try:
        candidate = Path(path) if os.path.isabs(path) else first / path
        real = candidate.resolve()
    except (ValueError, OSError) as err:  # embedded NUL byte, name too long, symlink loop
        reason = getattr(err, "strerror", None) or str(err)  # strerror names no server path
        raise ConfigError([f"{field}: {path[:200]!r} is not a usable path ({reason})"]) from None
    if not any(real == root or root in real.parents for root in usable.values()):
        raise ConfigError([f"{field}: {path!r} lies outside {' / '.join(usable)}"])
    return real


def data_path(path: str, field: str) -> Path:
    """A dataset path from a config, resolved under $DATA_ROOT."""
    return resolve_under(path, field, {DATA_ROOT_ENV: os.environ.get(DATA_ROOT_ENV)})


def weights_path(path: str, field: str) -> Path:
    """Initial weights: under $DATA_ROOT, or a previous job's checkpoint under $RUNS_ROOT."""
    return resolve_under(path, field, {DATA_ROOT_ENV: os.environ.get(DATA_ROOT_ENV),
                                       RUNS_ROOT_ENV: os.environ.get(RUNS_ROOT_ENV)})


# ---------------------------------------------------------------- the one spec resolver

def dataset_fields(cfg: JobConfig) -> dict[str, str]:
    """Config field -> dataset path as written, for every dataset the config names."""
    data = cfg.data
    if isinstance(cfg, TrainConfig):
        return {"data.train": data.train, **({"data.val": data.val} if data.val else {})}
    if isinstance(cfg, PredictConfig):
        return {}  # a bare video, no dataset: see input_fields
    return {"data.dataset": data.dataset}


def input_fields(cfg: JobConfig) -> dict[str, str]:
    """Config field -> path as written, for every input file or folder that is no dataset
    (a predict job's video and its prompts' mask files). Resolved under DATA_ROOT as
    datasets are."""
    if isinstance(cfg, PredictConfig):
        masks = {f"data.prompts.{i}.mask": p.mask
                 for i, p in enumerate(cfg.data.prompts) if p.mask is not None}
        return {"data.video": cfg.data.video, **masks}
    return {}


FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")  # frame files of a video folder
VIDEO_SUFFIXES = (".mp4",)


def input_problem(field: str, path: Path) -> str | None:
    """Why the resolved input `path` of `field` (an input_fields key) cannot be read, or None."""
    if field == "data.video":
        return video_problem(path)
    return None if path.is_file() else "file not found under DATA_ROOT"


def video_problem(path: Path) -> str | None:
    """Why the resolved `path` is no video a predict job can read (a folder holding frame
    files, or an .mp4 file), or None. Looks at names only; the program decodes."""
    if path.is_dir():
        if any(f.suffix.lower() in FRAME_SUFFIXES for f in path.iterdir()):
            return None
        return f"the folder holds no frame files ({', '.join(FRAME_SUFFIXES)})"
    if path.is_file():
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return None
        return f"expected a folder of frames or an {'/'.join(VIDEO_SUFFIXES)} file"
    return "not found under DATA_ROOT"


def _set_field(cfg: Strict, field: str, value) -> None:
    """Set the dotted `field` ("data.video", "data.prompts.0.mask") of `cfg`."""
    *parents, name = field.split(".")
    target = cfg
    for part in parents:
        target = target[int(part)] if part.isdigit() else getattr(target, part)
    setattr(target, name, value)


CheckpointLookup = Callable[[int, str], Path]
"""(job_id, checkpoint name) -> that job's checkpoint file; raises ConfigError naming
model.init.* when the job is not the caller's, or has no such checkpoint."""


def resolve_paths(cfg: JobConfig, *, data_root: str | os.PathLike,
                  checkpoint_of: CheckpointLookup | None = None,
                  runs_root: str | os.PathLike | None = None) -> JobConfig:
    """A copy of `cfg` whose every path is absolute: datasets, other inputs (input_fields)
    and a user-written model.init.path under DATA_ROOT only, symlinks followed;
    model.init.job_id becomes that job's checkpoint through `checkpoint_of`, which owns
    the owner check. A user never names a file under RUNS_ROOT: when `runs_root` is given
    (the API and the worker always give it), a user path that lands there is refused even
    when RUNS_ROOT lies inside DATA_ROOT. The stored spec stays as the user sent it; this
    runs where the paths are used (API validation, the worker writing job.json). Raises
    one ConfigError listing every problem, each naming its field."""
    resolved = cfg.model_copy(deep=True)
    roots = {DATA_ROOT_ENV: str(data_root)}
    runs = Path(runs_root).resolve() if runs_root is not None else None
    problems: list[str] = []

    def user_path(path: str, field: str) -> Path:
        real = resolve_under(path, field, roots)
        if runs is not None and (real == runs or runs in real.parents):
            raise ConfigError([f"{field}: {path[:200]!r} lies under RUNS_ROOT, where jobs keep "
                               "their runs; name a previous job with model.init.job_id"])
        return real

    def attempt(fn, *args):
        try:
            return fn(*args)
        except ConfigError as err:
            problems.extend(err.problems)
            return None

    for field, rel in {**dataset_fields(cfg), **input_fields(cfg)}.items():
        path = attempt(user_path, rel, field)
        if path is not None:
            _set_field(resolved, field, str(path))
    init = resolved.model.init
    if init is not None:
        if init.job_id is not None and init.path is not None:
            problems.append("model.init: give path or job_id, not both")
        elif init.job_id is not None:
            if checkpoint_of is None:
                problems.append("model.init.job_id: previous jobs are resolved by the service")
            else:
                path = attempt(checkpoint_of, init.job_id, init.checkpoint)
                if path is not None:
                    init.path = str(path)
        elif init.path is not None:
            path = attempt(user_path, init.path, "model.init.path")
            if path is not None:
                init.path = str(path)
    if problems:
        raise ConfigError(problems)
    return resolved
