"""Builders of the trainable tracker: tiny (random init, fast on a CPU) and `sam3` (the
upstream architecture, initialised from an upstream sam3.pt). `build_job_model` is a track
job's model: initial weights, what trains (freezing, model.lora's adapters).

Mirrors sam3.model_builder._create_tracker_* with the dims of a preset: those functions
hard-code 1008 px, and their PositionEmbeddingSine(precompute_resolution=1008) allocates on
"cuda" at construction. The SAM heads inside Sam3TrackerBase stay as upstream hard-codes
them (TwoWay depth 2, mlp 2048, 8 heads), so the tiny tracker is ~1.1 M parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sam3.model.decoder import TransformerDecoderLayerv2, TransformerEncoderCrossAttention
from sam3.model.memory import CXBlock, SimpleFuser, SimpleMaskDownSampler, SimpleMaskEncoder
from sam3.model.model_misc import TransformerWrapper
from sam3.model.vl_combiner import SAM3VLBackbone
from sam3.sam.transformer import RoPEAttention

from sam3_video import compat, lora
from sam3_video.backbone.presets import PATCH_SIZE, preset_dims
from sam3_video.backbone.vision import (build_vision_backbone, position_encoding,
                                        set_trunk_checkpointing)
from sam3_video.config import (ConfigError, FreezeConfig, LoraConfig, ModelConfig, TrackConfig,
                               WeightsRef, weights_path)
from sam3_video.tracker.model import Sam3TrackerTrain, TrackModel
from sam3_video.weights import load_track_model_weights, read_weights_file

# Upstream's tracker mask-decoder options (model_builder.build_tracker). They hold no
# weights and act only in eval mode; using them here makes our evaluation match sam3's.
SAM_DECODER_EXTRA_ARGS = {"dynamic_multimask_via_stability": True,
                          "dynamic_multimask_stability_delta": 0.05,
                          "dynamic_multimask_stability_thresh": 0.98}


@dataclass(frozen=True)
class TrackerDims:
    mem_dim: int         # channels of a memory (upstream 64); the hidden dim is the neck's d_model
    mem_layers: int      # memory-attention layers (upstream 4)
    ffn_dim: int         # memory-attention feed-forward width (upstream 2048)
    dropout: float       # memory-attention dropout (upstream 0.1)


TRACKER_PRESETS = {
    "sam3": TrackerDims(mem_dim=64, mem_layers=4, ffn_dim=2048, dropout=0.1),
    "tiny": TrackerDims(mem_dim=32, mem_layers=2, ffn_dim=256, dropout=0.1),
}


def build_memory_encoder(d_model: int, dims: TrackerDims, image_size: int) -> SimpleMaskEncoder:
    feat = image_size // PATCH_SIZE
    position = position_encoding(dims.mem_dim, precompute_resolution=image_size)
    # interpol_size = feature size x total stride 16 (upstream: 72 x 16 = 1152 at 1008 px).
    downsampler = SimpleMaskDownSampler(embed_dim=d_model, kernel_size=3, stride=2, padding=1,
                                        interpol_size=[feat * 16, feat * 16])
    fuser = SimpleFuser(layer=CXBlock(dim=d_model, kernel_size=7, padding=3,
                                      layer_scale_init_value=1e-6, use_dwconv=True), num_layers=2)
    return SimpleMaskEncoder(out_dim=dims.mem_dim, in_dim=d_model, position_encoding=position,
                             mask_downsampler=downsampler, fuser=fuser)


def build_memory_attention(d_model: int, dims: TrackerDims, image_size: int) -> TransformerWrapper:
    feat = image_size // PATCH_SIZE
    self_attention = RoPEAttention(embedding_dim=d_model, num_heads=1, downsample_rate=1,
                                   dropout=dims.dropout, rope_theta=10000.0, feat_sizes=[feat, feat],
                                   use_fa3=False, use_rope_real=False)
    cross_attention = RoPEAttention(embedding_dim=d_model, num_heads=1, downsample_rate=1,
                                    dropout=dims.dropout, kv_in_dim=dims.mem_dim, rope_theta=10000.0,
                                    feat_sizes=[feat, feat], rope_k_repeat=True, use_fa3=False,
                                    use_rope_real=False)
    layer = TransformerDecoderLayerv2(
        cross_attention_first=False, activation="relu", dim_feedforward=dims.ffn_dim,
        dropout=dims.dropout, pos_enc_at_attn=False, pre_norm=True, self_attention=self_attention,
        d_model=d_model, pos_enc_at_cross_attn_keys=True, pos_enc_at_cross_attn_queries=False,
        cross_attention=cross_attention)
    encoder = TransformerEncoderCrossAttention(
        remove_cross_attention_layers=[], batch_first=True, d_model=d_model, frozen=False,
        pos_enc_at_input=True, layer=layer, num_layers=dims.mem_layers, use_act_checkpoint=False)
    return TransformerWrapper(encoder=encoder, decoder=None, d_model=d_model)


def tracker_kwargs(preset: str, image_size: int, num_maskmem: int = 7) -> dict:
    """Constructor arguments shared by Sam3TrackerTrain and sam3's Sam3TrackerPredictor
    (the values of model_builder.build_tracker, with this preset's components)."""
    d_model = preset_dims(preset).d_model
    dims = TRACKER_PRESETS[preset]
    return dict(
        backbone=None, transformer=build_memory_attention(d_model, dims, image_size),
        maskmem_backbone=build_memory_encoder(d_model, dims, image_size),
        num_maskmem=num_maskmem, image_size=image_size, backbone_stride=PATCH_SIZE,
        multimask_output_in_sam=True, multimask_output_for_tracking=True,
        multimask_min_pt_num=0, multimask_max_pt_num=1, max_cond_frames_in_attn=4,
        forward_backbone_per_frame_for_eval=True, non_overlap_masks_for_mem_enc=False,
        sam_mask_decoder_extra_args=dict(SAM_DECODER_EXTRA_ARGS),
    )


def build_track_model(preset: str = "tiny", image_size: int | None = None,
                      track: TrackConfig | None = None) -> TrackModel:
    """The shared SAM3 vision backbone (trunk + detector neck + tracker neck) and a
    training tracker on its tracker-neck features, with `track`'s memory size and prompt
    mix (the defaults when None). Random init."""
    image_size = image_size or preset_dims(preset).image_size
    track = track or TrackConfig()
    compat.install_cpu_tracker()
    neck = build_vision_backbone(preset_dims(preset), image_size, with_tracker_neck=True)
    backbone = SAM3VLBackbone(visual=neck, text=None, scalp=1)
    tracker = Sam3TrackerTrain(track_config=track,
                               **tracker_kwargs(preset, image_size, track.num_maskmem))
    return TrackModel(backbone, tracker, preset=preset, image_size=image_size)


def set_trainable(model: TrackModel, train_trunk: bool = False, train_tracker_neck: bool = True) -> None:
    """Freeze what tracking does not train. The ViT trunk is shared with the detector and
    frozen by default; the detector's own neck convs never see a tracking gradient."""
    vision = model.backbone.vision_backbone
    for p in vision.trunk.parameters():
        p.requires_grad_(train_trunk)
    for p in vision.convs.parameters():
        p.requires_grad_(False)
    for p in vision.sam2_convs.parameters():
        p.requires_grad_(train_tracker_neck)
    for p in model.tracker.parameters():
        p.requires_grad_(True)


def build_job_model(cfg: ModelConfig, image_size: int, track: TrackConfig) -> TrackModel:
    """A track job's TrackModel in train mode: built for cfg.preset, initial weights from
    cfg.init.path (a track LoRA checkpoint's are its base with the adapters merged), the
    trunk frozen unless track.train_trunk (model.freeze.vision_backbone freezes the tracker
    neck too), model.freeze's patterns applied, then model.lora's adapters added."""
    model = build_track_model(cfg.preset, image_size, track)
    set_trunk_checkpointing(model.backbone.vision_backbone, cfg.activation_checkpointing)
    if cfg.init is not None and cfg.init.path is not None:
        path = weights_path(cfg.init.path, "model.init.path")
        blob = read_weights_file(path, "model.init.path")
        if lora.lora_of_checkpoint(blob) is not None:
            blob = merged_lora_checkpoint(blob, image_size, "model.init.path")
        load_track_model_weights(model, path, cfg.preset, blob=blob)
        del blob
    frozen = cfg.freeze.vision_backbone
    set_trainable(model, train_trunk=track.train_trunk and not frozen,
                  train_tracker_neck=track.train_backbone_neck and not frozen)
    # model.freeze.include / exclude: name patterns over TrackModel's parameters
    # (backbone.* and tracker.*); they only ever freeze more
    lora.apply_freeze_patterns(model, cfg.freeze, model_name=f"{cfg.preset} track model")
    if cfg.lora is not None:
        lora.add_adapters(model, cfg.lora, model_name=f"{cfg.preset} track model")
    return model.train()


def merged_lora_checkpoint(blob: dict, image_size: int | None = None,
                           field: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The TrackModel weights of a track job's LoRA checkpoint: its base rebuilt as the
    trainer built it (the recorded model.init; a random init, or the tracker of a file
    without one, under the run's seed), the adapters and other trained tensors loaded, the
    adapters merged in. Plain TrackModel keys (`backbone.*`, `tracker.*`)."""
    entry = lora.lora_of_checkpoint(blob)
    config = blob.get("config") or {}
    if config.get("task") != "track":
        raise ConfigError([f"{field}: a LoRA checkpoint of a {config.get('task', 'detect')!r} "
                           "job; a track job starts from a track job's LoRA checkpoint, or "
                           "from weights exported by python -m sam3_video.export"])
    base = entry["base"]
    model_cfg = (config.get("model") or {})
    base_cfg = ModelConfig(
        preset=base["preset"],
        init=WeightsRef.model_validate(base["init"]) if base["init"] is not None else None,
        lora=LoraConfig.model_validate(entry["config"]),
        freeze=FreezeConfig.model_validate(model_cfg.get("freeze") or {}),
        activation_checkpointing=model_cfg.get("activation_checkpointing", True))
    image_size = (image_size or (config.get("data") or {}).get("image_size")
                  or preset_dims(base["preset"]).image_size)
    track = TrackConfig.model_validate(config.get("track") or {})
    with torch.random.fork_rng(devices=[]):
        # the trainer's seed_everything(cfg.seed) before building the model
        torch.manual_seed(base["seed"] if base["seed"] is not None else config.get("seed", 0))
        model = build_job_model(base_cfg, image_size, track)
    lora.load_trainable_state(model, blob["model"], field)
    lora.merge_adapters(model)
    return model.state_dict()
