"""Builders for SAM3's detector from the `sam3` package's own classes, for any preset.

Mirrors sam3.model_builder (whose _create_* functions hard-code 1008 px and the full
dims, and allocate on CUDA at construction) with the dims of a `Sam3Dims` preset.
"""
from __future__ import annotations

from torch import nn

from sam3.model.decoder import TransformerDecoder, TransformerDecoderLayer
from sam3.model.encoder import TransformerEncoderFusion, TransformerEncoderLayer
from sam3.model.geometry_encoders import SequenceGeometryEncoder
from sam3.model.maskformer_segmentation import PixelDecoder, UniversalSegmentationHead
from sam3.model.model_misc import MLP, DotProductScoring, TransformerWrapper
from sam3.model.model_misc import MultiheadAttentionWrapper as MultiheadAttention
from sam3.model.necks import Sam3DualViTDetNeck
from sam3.model.position_encoding import PositionEmbeddingSine
from sam3.model.text_encoder_ve import VETextEncoder
from sam3.model.tokenizer_ve import SimpleTokenizer
from sam3.model.vitdet import ViT
from sam3.model.vl_combiner import SAM3VLBackbone

from sam3_video import compat
from sam3_video.model.presets import PATCH_SIZE, Sam3Dims

# Activation checkpointing stays on everywhere, as upstream: the fusion encoder and the
# decoder assert it is enabled whenever the model is in training mode.
ACTIVATION_CHECKPOINTING = True


def _attention(dims: Sam3Dims, dropout: float, batch_first: bool) -> MultiheadAttention:
    return MultiheadAttention(num_heads=dims.heads, dropout=dropout, embed_dim=dims.d_model,
                              batch_first=batch_first)


def _position_encoding(dims: Sam3Dims, precompute_resolution: int | None = None):
    return PositionEmbeddingSine(num_pos_feats=dims.d_model, normalize=True, scale=None,
                                 temperature=10000,
                                 precompute_resolution=compat.cuda_only(precompute_resolution))


def check_image_size(image_size: int, dims: Sam3Dims) -> None:
    if image_size % PATCH_SIZE:
        raise ValueError(f"image_size: {image_size} is not a multiple of the patch size {PATCH_SIZE}")
    # the neck's 0.5x level needs at least 2 tokens per side
    if image_size < 2 * PATCH_SIZE:
        raise ValueError(f"image_size: {image_size} is smaller than {2 * PATCH_SIZE}")


def build_vit(dims: Sam3Dims, image_size: int) -> ViT:
    return ViT(
        img_size=image_size, pretrain_img_size=dims.pretrain_image_size, patch_size=PATCH_SIZE,
        embed_dim=dims.vit_dim, depth=dims.vit_depth, num_heads=dims.vit_heads,
        mlp_ratio=dims.vit_mlp_ratio, norm_layer="LayerNorm", drop_path_rate=dims.vit_drop_path,
        qkv_bias=True, use_abs_pos=True, tile_abs_pos=True,
        global_att_blocks=dims.vit_global_blocks, rel_pos_blocks=(), use_rope=True,
        use_interp_rope=True, window_size=dims.vit_window, pretrain_use_cls_token=True,
        retain_cls_token=False, ln_pre=True, ln_post=False, return_interm_layers=False,
        bias_patch_embed=False, compile_mode=None,
    )


def build_vision_backbone(dims: Sam3Dims, image_size: int,
                          with_tracker_neck: bool = False) -> Sam3DualViTDetNeck:
    """ViT trunk + ViTDet neck. `with_tracker_neck` adds the second (SAM2) neck whose
    features feed the tracker, so detector and tracker share one backbone."""
    check_image_size(image_size, dims)
    return Sam3DualViTDetNeck(
        position_encoding=_position_encoding(dims, precompute_resolution=image_size),
        d_model=dims.d_model, scale_factors=[4.0, 2.0, 1.0, 0.5],
        trunk=build_vit(dims, image_size), add_sam2_neck=with_tracker_neck,
    )


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
        pos_enc=_position_encoding(dims), encode_boxes_as_points=False,
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
