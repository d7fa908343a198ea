"""Model dimensions per preset (one frozen dataclass per preset, torchtitan style).

`sam3` is the real upstream architecture (the values of sam3.model_builder); `tiny` keeps
the same structure with small dims so a training step on 2 clips x 4 frames runs in well
under a second on a 2-core CPU.
"""
from __future__ import annotations

from dataclasses import dataclass

PATCH_SIZE = 14


@dataclass(frozen=True)
class Sam3Dims:
    image_size: int             # default input size (pixels); a multiple of PATCH_SIZE
    pretrain_image_size: int    # ViT abs-pos table size (tiled to image_size)
    vit_dim: int
    vit_depth: int
    vit_heads: int
    vit_mlp_ratio: float
    vit_window: int
    vit_global_blocks: tuple[int, ...]
    vit_drop_path: float
    d_model: int                # width of the neck, fusion encoder, decoder and heads
    heads: int
    ffn_dim: int
    encoder_layers: int
    decoder_layers: int
    geometry_layers: int
    num_queries: int
    dropout: float
    text_width: int
    text_heads: int
    text_layers: int
    text_context: int


SAM3 = Sam3Dims(
    image_size=1008, pretrain_image_size=336,
    vit_dim=1024, vit_depth=32, vit_heads=16, vit_mlp_ratio=4.625, vit_window=24,
    vit_global_blocks=(7, 15, 23, 31), vit_drop_path=0.1,
    d_model=256, heads=8, ffn_dim=2048,
    encoder_layers=6, decoder_layers=6, geometry_layers=3, num_queries=200, dropout=0.1,
    text_width=1024, text_heads=16, text_layers=24, text_context=32,
)

# Tiny: 112 px = 8x8 patch tokens. Dropout and drop-path are 0 so the batched and the
# per-frame paths can be compared exactly and a few steps visibly lower the loss.
TINY = Sam3Dims(
    image_size=112, pretrain_image_size=112,
    vit_dim=64, vit_depth=2, vit_heads=2, vit_mlp_ratio=4.0, vit_window=8,
    vit_global_blocks=(1,), vit_drop_path=0.0,
    d_model=64, heads=2, ffn_dim=128,
    encoder_layers=1, decoder_layers=2, geometry_layers=1, num_queries=16, dropout=0.0,
    text_width=64, text_heads=2, text_layers=2, text_context=16,
)

PRESETS: dict[str, Sam3Dims] = {"tiny": TINY, "sam3": SAM3}


def preset_dims(preset: str) -> Sam3Dims:
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"model.preset: unknown preset {preset!r}; one of {sorted(PRESETS)}") from None


def default_image_size(preset: str) -> int:
    return preset_dims(preset).image_size


# Training defaults per preset: what a job gets for each `optim.*`, `schedule.*` and
# `data.augment.*` field it leaves unset (filled once, when sam3_video.config validates
# the TrainConfig; a value the job sets, null included, always wins). `tiny` has none: the field defaults in config.py apply.
# `sam3` takes upstream's fine-tuning recipe, facebookresearch/sam3
# sam3/train/configs/roboflow_v100/roboflow_v100_full_ft_100_images.yaml (the odinw13
# *_train.yaml configs use the same numbers): lr_scale 0.1 x (lr_transformer 8e-4,
# lr_vision_backbone 2.5e-4, lr_language_backbone 5e-5), lrd_vision_backbone 0.9 on
# backbone.vision_backbone.trunk, wd 0.1, InverseSquareRootParamScheduler with
# warmup_steps 20, timescale 20, cooldown_steps 20.
TRAINING_DEFAULTS: dict[str, dict[str, dict[str, object]]] = {
    "tiny": {},
    "sam3": {
        "optim": {"lr": 8e-5, "vision_lr": 2.5e-5, "language_lr": 5e-6,
                  "layer_decay": 0.9, "weight_decay": 0.1},
        "schedule": {"name": "inverse_sqrt", "warmup_steps": 20, "cooldown_steps": 20},
        # upstream's train transforms (random resize + pad; sam3_video.data.augment)
        "data.augment": {"enabled": True},
    },
}


def training_defaults(preset: str) -> dict[str, dict[str, object]]:
    """{section: {field: value}} a job of `preset` gets for the fields it leaves unset."""
    preset_dims(preset)  # an unknown preset fails here, naming model.preset
    return TRAINING_DEFAULTS[preset]
