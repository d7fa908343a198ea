"""The `sam3` preset is exactly the upstream detector; builds and freezing behave.

How (b) is checked: no real weights exist here, so both sides are built on the meta
device (shapes only, no memory). Upstream comes from sam3's own builders in
`sam3.model_builder`, run inside a TorchFunctionMode that sends every tensor factory to
"meta" (including the CUDA-only cache allocations that make those builders fail on a CPU)
and keeps `torch.linspace` on the CPU (ViT reads drop-path rates with .item()):
`build_sam3_image_model` for the plain detector, and `build_sam3_video_model`, whose
`detector.*` keys are the layout of sam3.pt, for the detector with the tracker neck.
Names and shapes of every state-dict entry (parameters and buffers) must agree.
"""
from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

from sam3_video import compat
from sam3_video.backbone.presets import TINY, default_image_size
from sam3_video.config import FreezeConfig, ModelConfig
from sam3_video.detector.build import build_model
from sam3_video.detector.loss import build_detection_loss
from sam3_video.optim import trunk_layer_id

from .conftest import tiny_model

VISION = "backbone.vision_backbone."
TEXT = "backbone.language_backbone."


class _AllocateOnMeta(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _device_constructors():
            kwargs["device"] = "cpu" if func is torch.linspace else "meta"
        return func(*args, **kwargs)


def _shapes(state: dict, prefix: str = "") -> dict:
    return {prefix + k: tuple(v.shape) for k, v in state.items()}


@pytest.fixture(scope="module")
def upstream_detector_shapes():
    from sam3 import model_builder

    bpe = compat.bpe_vocab_path()
    with _AllocateOnMeta():
        image_model = model_builder.build_sam3_image_model(
            bpe_path=bpe, device="cpu", eval_mode=False, checkpoint_path=None,
            load_from_HF=False, enable_inst_interactivity=False)
        video_model = model_builder.build_sam3_video_model(
            checkpoint_path=None, load_from_HF=False, bpe_path=bpe, device="meta")
    compat.release_predictor_autocast(video_model.tracker)  # upstream enters it globally
    plain = _shapes(image_model.state_dict())
    in_sam3_pt = {k[len("detector."):]: v for k, v in _shapes(video_model.state_dict()).items()
                  if k.startswith("detector.")}
    return plain, in_sam3_pt


@pytest.mark.parametrize("with_tracker_neck", [False, True])
def test_sam3_preset_matches_upstream_detector(upstream_detector_shapes, with_tracker_neck):
    with _AllocateOnMeta():
        ours = build_model(ModelConfig(preset="sam3"), with_tracker_neck=with_tracker_neck)
    expected = upstream_detector_shapes[1 if with_tracker_neck else 0]
    got = _shapes(ours.state_dict())
    assert sorted(set(expected) - set(got)) == []
    assert sorted(set(got) - set(expected)) == []
    assert {k: v for k, v in got.items() if expected[k] != v} == {}
    assert sum(p.numel() for p in ours.parameters()) > 800_000_000  # ViT-L + text 1024x24
    assert default_image_size("sam3") == 1008


def test_text_encoder_params_finite_after_build():
    """Upstream leaves positional_embedding / text_projection as torch.empty."""
    for seed in range(3):
        model = tiny_model(seed=seed)
        text = model.backbone.language_backbone.encoder
        for tensor in (text.positional_embedding, text.text_projection):
            assert torch.isfinite(tensor).all()
            assert tensor.abs().max() < 10
            assert tensor.std() > 0  # initialised, not zeros
        bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
        assert bad == []


@pytest.mark.parametrize("vision,text", [(True, False), (False, True), (True, True)])
def test_freeze_flags_freeze_the_right_parameters(vision, text, clip_batch):
    model = tiny_model(freeze=FreezeConfig(vision_backbone=vision, text_encoder=text))
    for name, param in model.named_parameters():
        frozen = ((vision and name.startswith(VISION)) or (text and name.startswith(TEXT))
                  or name.startswith(compat.DETECTOR_UNUSED_PARAMS))
        assert param.requires_grad is not frozen, name
    # and the frozen ones get no gradient from a training step
    losses = build_detection_loss(TINY.num_queries, distributed=False)(model(clip_batch), clip_batch)
    losses["core_loss"].backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(grads[n] is None for n in grads if vision and n.startswith(VISION))
    assert all(grads[n] is None for n in grads if text and n.startswith(TEXT))
    assert grads["transformer.decoder.query_embed.weight"] is not None


def test_only_never_used_parameters_frozen_by_default(clip_batch):
    """Everything trains except what the forward never reaches (compat item 9); a
    training step gives every trainable parameter a gradient (strict DDP needs that)."""
    model = tiny_model()
    frozen = sorted(n for n, p in model.named_parameters() if not p.requires_grad)
    assert frozen and all(n.startswith(compat.DETECTOR_UNUSED_PARAMS) for n in frozen)
    losses = build_detection_loss(TINY.num_queries, distributed=False)(model(clip_batch), clip_batch)
    losses["core_loss"].backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)


def test_tiny_image_size_override_and_bad_size():
    model = build_model(ModelConfig(preset="tiny"), image_size=2 * TINY.image_size)
    assert model.backbone.vision_backbone.trunk.patch_embed is not None
    with pytest.raises(ValueError, match="image_size"):
        build_model(ModelConfig(preset="tiny"), image_size=TINY.image_size + 1)


def test_trunk_layer_id_for_layer_decay():
    depth = TINY.vit_depth
    model = tiny_model()
    ids = {n: trunk_layer_id(n, depth) for n, _ in model.named_parameters()}
    assert ids["backbone.vision_backbone.trunk.patch_embed.proj.weight"] == 0
    assert ids["backbone.vision_backbone.trunk.blocks.0.attn.qkv.weight"] == 1
    assert ids[f"backbone.vision_backbone.trunk.blocks.{depth - 1}.mlp.fc1.weight"] == depth
    assert ids["transformer.decoder.query_embed.weight"] == depth + 1
    assert set(ids.values()) == set(range(depth + 2))


def test_sam3_image_size_rule_is_where_sam3_tiles_its_position_table():
    """The config's rule (sam3_video.config.image_size_problem) refuses exactly the sizes
    at which sam3's own tiling (vitdet.get_abs_pos, tile_abs_pos=True) cuts the table."""
    from sam3.model.vitdet import get_abs_pos

    from sam3_video.backbone.presets import PATCH_SIZE, SAM3
    from sam3_video.config import image_size_problem

    side = SAM3.pretrain_image_size // PATCH_SIZE  # 24
    table = torch.arange(1 + side * side, dtype=torch.float32).reshape(1, -1, 1)  # cls + grid
    for size in range(14 * 24, 14 * 100, PATCH_SIZE):
        grid = size // PATCH_SIZE
        pos = get_abs_pos(table, has_cls_token=True, hw=(grid, grid), tiling=True)[0, ..., 0]
        last = pos[grid - side:, grid - side:]  # the bottom-right 24x24 corner
        whole = torch.equal(last, pos[:side, :side])  # the grid ends on a whole copy
        assert whole == (image_size_problem("sam3", size) is None), size
    assert image_size_problem("tiny", 14 * 9) is None
