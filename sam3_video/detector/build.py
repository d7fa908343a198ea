"""The detector (VideoSam3) built from the `sam3` package's classes for any preset, ready
to train: `build_model` builds it for a ModelConfig, loads its initial weights
(sam3_video.weights) and applies the configured freezing.

Mirrors sam3.model_builder (whose _create_* functions hard-code 1008 px and the full
dims, and allocate on CUDA at construction) with the dims of a `Sam3Dims` preset.
"""
from __future__ import annotations

import torch
from torch import nn

from sam3.model.decoder import TransformerDecoder, TransformerDecoderLayer
from sam3.model.encoder import TransformerEncoderFusion, TransformerEncoderLayer
from sam3.model.geometry_encoders import SequenceGeometryEncoder
from sam3.model.maskformer_segmentation import PixelDecoder, UniversalSegmentationHead
from sam3.model.model_misc import MLP, DotProductScoring, TransformerWrapper
from sam3.model.model_misc import MultiheadAttentionWrapper as MultiheadAttention
from sam3.model.text_encoder_ve import VETextEncoder
from sam3.model.tokenizer_ve import SimpleTokenizer
from sam3.model.vl_combiner import SAM3VLBackbone

from sam3_video import compat, lora
from sam3_video.backbone.presets import PATCH_SIZE, Sam3Dims, preset_dims
from sam3_video.backbone.vision import (build_vision_backbone, position_encoding,
                                        set_trunk_checkpointing)
from sam3_video.config import ConfigError, FreezeConfig, LoraConfig, ModelConfig, WeightsRef, weights_path
from sam3_video.detector.loss import build_matcher
from sam3_video.detector.model import VideoSam3
from sam3_video.weights import load_detector_weights, read_weights_file

# Activation checkpointing stays on everywhere, as upstream: the fusion encoder and the
# decoder assert it is enabled whenever the model is in training mode.
ACTIVATION_CHECKPOINTING = True
VISION_PREFIX = "backbone.vision_backbone."
TEXT_PREFIX = "backbone.language_backbone."


def build_model(cfg: ModelConfig, image_size: int | None = None, *,
                with_tracker_neck: bool = False) -> VideoSam3:
    """A VideoSam3 on the CPU in train mode: built for cfg.preset at `image_size`
    (None: the preset's), initial weights from cfg.init.path (a LoRA checkpoint's are its
    base with the adapters merged), cfg.freeze applied, then cfg.lora's adapters added.
    Parameters the forward never reaches have requires_grad False (compat, item 9), so
    DistributedDataParallel(model, find_unused_parameters=False) works."""
    dims = preset_dims(cfg.preset)
    image_size = image_size or dims.image_size
    model = VideoSam3(
        **build_detector_parts(dims, image_size, with_tracker_neck),
        num_feature_levels=1, o2m_mask_predict=True, use_instance_query=False,
        multimask_output=True, inst_interactive_predictor=None, matcher=build_matcher(),
        use_dot_prod_scoring=True, supervise_joint_box_scores=True,
    )
    compat.init_text_encoder_params(model)
    set_trunk_checkpointing(model.backbone.vision_backbone, cfg.activation_checkpointing)
    if cfg.init is not None and cfg.init.path:
        path = weights_path(cfg.init.path, "model.init.path")
        blob = read_weights_file(path, "model.init.path")
        if lora.lora_of_checkpoint(blob) is not None:
            blob = merged_lora_checkpoint(blob, image_size, with_tracker_neck, "model.init.path")
        load_detector_weights(model, path, cfg.preset, blob=blob)
        del blob
    elif cfg.init is not None and cfg.init.job_id is not None:
        raise ConfigError(["model.init.path: job_id was given but not resolved to a checkpoint file"])
    compat.freeze_detector_unused_params(model)
    apply_freeze(model, cfg.freeze, preset=cfg.preset)
    if cfg.lora is not None:
        lora.add_adapters(model, cfg.lora, model_name=f"{cfg.preset} detect model")
    return model.train()


def apply_freeze(model: nn.Module, freeze: FreezeConfig, preset: str = "tiny") -> None:
    """Frozen parts keep requires_grad False (the optimiser then skips them): the vision
    backbone and text encoder by flag, and parameters by name pattern (include/exclude)."""
    prefixes = tuple(p for p, on in ((VISION_PREFIX, freeze.vision_backbone),
                                     (TEXT_PREFIX, freeze.text_encoder)) if on)
    lora.apply_freeze_patterns(model, freeze, prefixes=prefixes,
                               model_name=f"{preset} detect model")


def merged_lora_checkpoint(blob: dict, image_size: int | None = None,
                           with_tracker_neck: bool = False,
                           field: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The detector weights of a LoRA training checkpoint: its base rebuilt from the
    recorded model.init (or, for a random init, under the recorded seed), the adapters
    and other trained tensors loaded, the adapters merged in. Plain VideoSam3 keys."""
    entry = lora.lora_of_checkpoint(blob)
    config = blob.get("config") or {}
    if config.get("task", "detect") != "detect":
        raise ConfigError([f"{field}: a LoRA checkpoint of a {config.get('task')!r} job; "
                           "only detect LoRA checkpoints are supported"])
    base = entry["base"]
    init = WeightsRef.model_validate(base["init"]) if base["init"] is not None else None
    base_cfg = ModelConfig(preset=base["preset"], init=init,
                           lora=LoraConfig.model_validate(entry["config"]),
                           freeze=FreezeConfig.model_validate(
                               (config.get("model") or {}).get("freeze") or {}))
    if image_size is None:
        image_size = (config.get("data") or {}).get("image_size")
    with torch.random.fork_rng(devices=[]):
        # a random init: the trainer's seed_everything(cfg.seed) before building it
        torch.manual_seed(base["seed"] if base["seed"] is not None else 0)
        model = build_model(base_cfg, image_size, with_tracker_neck=with_tracker_neck)
    lora.load_trainable_state(model, blob["model"], field)
    lora.merge_adapters(model)
    return model.state_dict()


def _attention(dims: Sam3Dims, dropout: float, batch_first: bool) -> MultiheadAttention:
    return MultiheadAttention(num_heads=dims.heads, dropout=dropout, embed_dim=dims.d_model,
                              batch_first=batch_first)


def build_text_encoder(dims: Sam3Dims) -> VETextEncoder:
    tokenizer = SimpleTokenizer(bpe_path=compat.bpe_vocab_path())
    return VETextEncoder(tokenizer=tokenizer, d_model=dims.d_model, width=dims.text_width,
                         heads=dims.text_heads, layers=dims.text_layers,
                         context_length=dims.text_context)


def build_transformer(dims: Sam3Dims, image_size: int) -> TransformerWrapper:
    """Fusion encoder (image x prompt) + DETR-style decoder with a presence token."""
    encoder_layer = TransformerEncoderLayer(
        activation="relu", d_model=dims.d_model, dim_feedforward=dims.ffn_dim,
        dropout=dims.dropout, pos_enc_at_attn=True, pos_enc_at_cross_attn_keys=False,
        pos_enc_at_cross_attn_queries=False, pre_norm=True,
        self_attention=_attention(dims, dims.dropout, batch_first=True),
        cross_attention=_attention(dims, dims.dropout, batch_first=True),
    )
    encoder = TransformerEncoderFusion(
        layer=encoder_layer, num_layers=dims.encoder_layers, d_model=dims.d_model,
        num_feature_levels=1, frozen=False, use_act_checkpoint=ACTIVATION_CHECKPOINTING,
        add_pooled_text_to_img_feat=False, pool_text_with_mask=True,
    )
    decoder_layer = TransformerDecoderLayer(
        activation="relu", d_model=dims.d_model, dim_feedforward=dims.ffn_dim,
        dropout=dims.dropout, cross_attention=_attention(dims, dims.dropout, batch_first=False),
        n_heads=dims.heads, use_text_cross_attention=True,
    )
    decoder = TransformerDecoder(
        layer=decoder_layer, num_layers=dims.decoder_layers, num_queries=dims.num_queries,
        return_intermediate=True, box_refine=True, num_o2m_queries=0, dac=True, boxRPB="log",
        d_model=dims.d_model, frozen=False, interaction_layer=None, dac_use_selfatt_ln=True,
        resolution=compat.cuda_only(image_size), stride=compat.cuda_only(PATCH_SIZE),
        use_act_checkpoint=ACTIVATION_CHECKPOINTING, presence_token=True,
    )
    return TransformerWrapper(encoder=encoder, decoder=decoder, d_model=dims.d_model)


def build_dot_product_scoring(dims: Sam3Dims) -> DotProductScoring:
    prompt_mlp = MLP(input_dim=dims.d_model, hidden_dim=dims.ffn_dim, output_dim=dims.d_model,
                     num_layers=2, dropout=dims.dropout, residual=True,
                     out_norm=nn.LayerNorm(dims.d_model))
    return DotProductScoring(d_model=dims.d_model, d_proj=dims.d_model, prompt_mlp=prompt_mlp)


def build_segmentation_head(dims: Sam3Dims) -> UniversalSegmentationHead:
    pixel_decoder = PixelDecoder(num_upsampling_stages=3, interpolation_mode="nearest",
                                 hidden_dim=dims.d_model, compile_mode=None)
    return UniversalSegmentationHead(
        hidden_dim=dims.d_model, upsampling_stages=3, aux_masks=False, presence_head=False,
        dot_product_scorer=None, act_ckpt=ACTIVATION_CHECKPOINTING,
        cross_attend_prompt=_attention(dims, 0.0, batch_first=False),
        pixel_decoder=pixel_decoder,
    )


def build_geometry_encoder(dims: Sam3Dims) -> SequenceGeometryEncoder:
    """Encoder of box/point prompts (exemplars); text-only training still runs it."""
    layer = TransformerEncoderLayer(
        activation="relu", d_model=dims.d_model, dim_feedforward=dims.ffn_dim,
        dropout=dims.dropout, pos_enc_at_attn=False, pre_norm=True,
        self_attention=_attention(dims, dims.dropout, batch_first=False),
        pos_enc_at_cross_attn_queries=False, pos_enc_at_cross_attn_keys=True,
        cross_attention=_attention(dims, dims.dropout, batch_first=False),
    )
    return SequenceGeometryEncoder(
        pos_enc=position_encoding(dims.d_model), encode_boxes_as_points=False,
        points_direct_project=True, points_pool=True, points_pos_enc=True,
        boxes_direct_project=True, boxes_pool=True, boxes_pos_enc=True, d_model=dims.d_model,
        num_layers=dims.geometry_layers, layer=layer, use_act_ckpt=ACTIVATION_CHECKPOINTING,
        add_cls=True, add_post_encode_proj=True,
    )


def build_detector_parts(dims: Sam3Dims, image_size: int, with_tracker_neck: bool) -> dict:
    """Keyword arguments for Sam3Image: every trainable part of the detector."""
    backbone = SAM3VLBackbone(
        visual=build_vision_backbone(dims, image_size, with_tracker_neck),
        text=build_text_encoder(dims), scalp=1,
    )
    return dict(
        backbone=backbone,
        transformer=build_transformer(dims, image_size),
        input_geometry_encoder=build_geometry_encoder(dims),
        segmentation_head=build_segmentation_head(dims),
        dot_prod_scoring=build_dot_product_scoring(dims),
    )
