"""The shared vision backbone, built from the `sam3` package's classes for any preset.

SAM3's ViT trunk feeds two necks: the detector's ViTDet neck (`convs`) and, when asked for,
the tracker's SAM2 neck (`sam2_convs`); detector and tracker therefore share one backbone
and no backbone weight is stored twice. Mirrors sam3.model_builder (whose _create_*
functions hard-code 1008 px and the full dims, and allocate on CUDA at construction) with
the dims of a `Sam3Dims` preset.
"""
from __future__ import annotations

import torch
from sam3.model.necks import Sam3DualViTDetNeck
from sam3.model.position_encoding import PositionEmbeddingSine
from sam3.model.vitdet import Attention, ViT

from sam3_video import compat
from sam3_video.backbone.presets import PATCH_SIZE, Sam3Dims
from sam3_video.weights import rope_table_block

# Evaluation runs the backbone over at most this many frames of a video at once (detect
# and track alike): a whole long video at 1008 px would not fit in GPU memory.
EVAL_CHUNK_FRAMES = 8


def position_encoding(num_pos_feats: int, precompute_resolution: int | None = None) -> PositionEmbeddingSine:
    """sam3's sine position encoding; its cache is precomputed on CUDA machines only (compat item 2)."""
    return PositionEmbeddingSine(num_pos_feats=num_pos_feats, normalize=True, scale=None,
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


def trunk_rope_tables(dims: Sam3Dims, image_size: int) -> dict[int, torch.Tensor]:
    """Block index -> the RoPE table of that block of a `dims` trunk built at `image_size`
    (what build_vit's blocks hold), made by sam3's own Attention with build_vit's settings."""
    grid = image_size // PATCH_SIZE
    window = (dims.vit_window, dims.vit_window)
    tables = {}
    for is_global in (False, True):
        attention = Attention(dims.vit_dim, num_heads=dims.vit_heads, use_rope=True,
                              input_size=(grid, grid) if is_global else window,
                              rope_pt_size=window, rope_interp=True)
        tables[is_global] = attention.freqs_cis
    return {i: tables[i in dims.vit_global_blocks] for i in range(dims.vit_depth)}


def with_rope_tables(state: dict[str, torch.Tensor], dims: Sam3Dims,
                     image_size: int) -> dict[str, torch.Tensor]:
    """`state` (any layout) with every trunk RoPE table replaced by the one of a trunk at
    `image_size`: weights trained at one size then fit a model built at another."""
    tables = trunk_rope_tables(dims, image_size)
    out = dict(state)
    for key in state:
        block = rope_table_block(key)
        if block is not None:
            out[key] = tables[block].clone()
    return out


def build_vision_backbone(dims: Sam3Dims, image_size: int,
                          with_tracker_neck: bool = False) -> Sam3DualViTDetNeck:
    """ViT trunk + ViTDet neck. `with_tracker_neck` adds the second (SAM2) neck whose
    features feed the tracker, so detector and tracker share one backbone."""
    check_image_size(image_size, dims)
    return Sam3DualViTDetNeck(
        position_encoding=position_encoding(dims.d_model, precompute_resolution=image_size),
        d_model=dims.d_model, scale_factors=[4.0, 2.0, 1.0, 0.5],
        trunk=build_vit(dims, image_size), add_sam2_neck=with_tracker_neck,
    )


def set_trunk_checkpointing(vision_backbone: Sam3DualViTDetNeck, enabled: bool) -> None:
    """model.activation_checkpointing: the ViT trunk recomputes each block's activations
    in backward (torch.utils.checkpoint, in training mode only) when enabled."""
    vision_backbone.trunk.use_act_checkpoint = enabled
