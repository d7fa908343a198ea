"""Per-module learning rates (optim.lr / vision_lr / language_lr, layer_decay on the ViT
trunk) on the real tiny models, and the `sam3` preset's defaults, which are upstream's."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sam3_video.backbone.presets import TINY
from sam3_video.config import (MAX_STEPS, ConfigError, OptimConfig, ScheduleConfig, TrainConfig,
                               parse_config)
from sam3_video.optim import LrFactor, build_optimizer, build_scheduler, logged_group, param_groups

REPO = Path(__file__).resolve().parents[2]
BASE = {"data": {"train": "synthetic"}, "max_steps": 100}
TRUNK = "backbone.vision_backbone.trunk."
VISION = "backbone.vision_backbone."
LANGUAGE = "backbone.language_backbone."

# Upstream sam3's fine-tuning recipe, facebookresearch/sam3
# sam3/train/configs/roboflow_v100/roboflow_v100_full_ft_100_images.yaml (scratch section):
# lr_scale 0.1; lr_transformer 8e-4, lr_vision_backbone 2.5e-4, lr_language_backbone 5e-5
# (each x lr_scale); lrd_vision_backbone 0.9; wd 0.1; InverseSquareRootParamScheduler with
# scheduler_warmup 20, scheduler_timescale 20, scheduler_cooldown 20.
UPSTREAM_OPTIM = {"lr": 8e-4 * 0.1, "vision_lr": 2.5e-4 * 0.1, "language_lr": 5e-5 * 0.1,
                  "layer_decay": 0.9, "weight_decay": 0.1}
UPSTREAM_SCHEDULE = {"name": "inverse_sqrt", "warmup_steps": 20, "cooldown_steps": 20}

RATES = OptimConfig(lr=1e-3, vision_lr=1e-4, language_lr=1e-5, layer_decay=0.5, weight_decay=0.1)


@pytest.fixture(scope="module")
def detect_model() -> torch.nn.Module:
    from sam3_video.config import ModelConfig
    from sam3_video.detector.build import build_model

    return build_model(ModelConfig(preset="tiny"))


@pytest.fixture(scope="module")
def track_model() -> torch.nn.Module:
    from sam3_video.tracker.build import build_track_model, set_trainable

    model = build_track_model("tiny")
    set_trainable(model, train_trunk=True)  # every part, trunk included, gets a rate
    return model


def _by_name(groups: list[dict]) -> dict[str, dict]:
    return {n: g for g in groups for n in g["names"]}


def expected_lr(name: str, cfg: OptimConfig, depth: int) -> float:
    """The rate a parameter should train at, written out from the rules."""
    if name.startswith(LANGUAGE):
        return cfg.language_lr
    if not name.startswith(VISION):
        return cfg.lr
    if not name.startswith(TRUNK) or "pos_embed" in name:  # neck; upstream's pos_embed override
        return cfg.vision_lr
    if ".blocks." in name:
        i = int(name[len(TRUNK):].split(".")[1])
        return cfg.vision_lr * cfg.layer_decay ** (depth - i)
    return cfg.vision_lr * cfg.layer_decay ** (depth + 1)  # patch_embed, ln_pre


@pytest.mark.parametrize("which", ["detect_model", "track_model"])
def test_every_trainable_parameter_lands_in_one_group_at_its_rate(which, request):
    model = request.getfixturevalue(which)
    groups = param_groups(model, RATES)
    names = [n for g in groups for n in g["names"]]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert len(names) == len(set(names)) and set(names) == trainable
    assert sum(len(g["params"]) for g in groups) == len(trainable)
    by_name = _by_name(groups)
    for name in trainable:
        assert by_name[name]["lr"] == pytest.approx(expected_lr(name, RATES, TINY.vit_depth)), name
    lrs = {n: g["lr"] for n, g in by_name.items()}
    assert lrs[TRUNK + "blocks.0.attn.qkv.weight"] == pytest.approx(1e-4 * 0.5 ** TINY.vit_depth)
    assert lrs[TRUNK + "patch_embed.proj.weight"] == pytest.approx(1e-4 * 0.5 ** (TINY.vit_depth + 1))
    assert lrs[TRUNK + "pos_embed"] == pytest.approx(1e-4)
    neck = "convs" if which == "detect_model" else "sam2_convs"
    assert all(lr == pytest.approx(1e-4) for n, lr in lrs.items() if n.startswith(VISION + neck))
    if which == "detect_model":
        assert {lrs[n] for n in lrs if n.startswith(LANGUAGE)} == {1e-5}
        assert lrs["transformer.decoder.query_embed.weight"] == 1e-3
    else:
        assert all(lr == 1e-3 for n, lr in lrs.items() if n.startswith("tracker."))


def test_group_order_is_fixed_and_the_logged_group_is_the_transformer_at_full_rate(detect_model):
    groups = param_groups(detect_model, RATES)
    again = param_groups(detect_model, RATES)
    assert [g["names"] for g in groups] == [g["names"] for g in again]
    optimizer = build_optimizer(detect_model, RATES)
    logged = optimizer.param_groups[logged_group(optimizer)]
    assert "transformer" in logged["modules"] and logged["lr"] == RATES.lr  # what train.py logs
    assert logged["weight_decay"] == RATES.weight_decay
    keys = [(g["lr"], g["weight_decay"]) for g in groups]
    assert len(keys) == len(set(keys)) and keys == sorted(keys, key=lambda k: (-k[0], -k[1]))


def test_one_rate_keeps_the_two_groups_older_checkpoints_have(detect_model):
    """Equal rates share a group: a run (and its checkpoint) from before per-module rates
    had one decayed and one undecayed group, and resumes into the same layout."""
    groups = param_groups(detect_model, OptimConfig(lr=1e-3, weight_decay=0.05))
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(1e-3, 0.05), (1e-3, 0.0)]
    assert sorted(groups[0]["modules"]) == ["language", "transformer", "vision"]


def test_sam3_preset_defaults_are_upstreams():
    cfg = parse_config("train", {**BASE, "model": {"preset": "sam3"}})
    assert cfg.optim.model_dump(include=set(UPSTREAM_OPTIM)) == pytest.approx(UPSTREAM_OPTIM)
    assert cfg.schedule.model_dump(include=set(UPSTREAM_SCHEDULE)) == UPSTREAM_SCHEDULE
    # filled once: the stored spec (model_dump) validates to the same config
    assert parse_config("train", cfg.model_dump(mode="json")) == cfg


def test_sam3_defaults_train_the_text_encoder_far_below_the_transformer(detect_model):
    """The defect: every module trained at one lr. With the sam3 defaults the text encoder
    trains 16x below the transformer (upstream: 5e-5 vs 8e-4), the vision backbone 3.2x."""
    cfg = parse_config("train", {**BASE, "model": {"preset": "sam3"}})
    optimizer = build_optimizer(detect_model, cfg.optim)
    by_module = {}
    for g in optimizer.param_groups:
        if g["lr_scale"] == 1.0:
            for module in g["modules"]:
                by_module.setdefault(module, g["lr"])
    logged = optimizer.param_groups[logged_group(optimizer)]["lr"]
    assert logged == by_module["transformer"] == pytest.approx(8e-5)
    assert by_module["transformer"] / by_module["language"] == pytest.approx(16)
    assert by_module["transformer"] / by_module["vision"] == pytest.approx(3.2)
    # the schedule multiplies every group's own base rate: the ratios hold at every step
    base = [g["lr"] for g in optimizer.param_groups]
    scheduler = build_scheduler(optimizer, cfg.schedule, cfg.max_steps)
    factor = LrFactor(cfg.schedule, cfg.max_steps)
    for step in range(1, 40):
        optimizer.step()
        scheduler.step()
        assert [g["lr"] for g in optimizer.param_groups] == pytest.approx(
            [b * factor(step) for b in base])


def test_a_users_value_beats_the_preset_default():
    cfg = parse_config("train", {**BASE, "model": {"preset": "sam3"},
                                 "optim": {"lr": 1e-3, "vision_lr": None, "layer_decay": 1.0},
                                 "schedule": {"warmup_steps": 0}})
    assert (cfg.optim.lr, cfg.optim.vision_lr, cfg.optim.layer_decay) == (1e-3, None, 1.0)
    assert cfg.optim.language_lr == pytest.approx(5e-6)  # unset: still the preset's
    assert cfg.schedule.warmup_steps == 0 and cfg.schedule.name == "inverse_sqrt"
    mine = OptimConfig(weight_decay=0.0)
    built = TrainConfig(model={"preset": "sam3"}, optim=mine, **BASE)
    assert built.optim.weight_decay == 0.0 and built.optim.lr == pytest.approx(8e-5)
    assert mine.lr == 1e-4 and mine.model_fields_set == {"weight_decay"}  # caller's copy untouched


def test_tiny_preset_keeps_the_field_defaults_and_the_examples_their_numbers():
    cfg = parse_config("train", BASE)
    assert cfg.optim == OptimConfig() and cfg.schedule == ScheduleConfig()
    assert (cfg.optim.lr, cfg.optim.vision_lr, cfg.optim.language_lr, cfg.optim.layer_decay,
            cfg.optim.weight_decay) == (1e-4, None, None, None, 0.05)
    assert (cfg.schedule.name, cfg.schedule.warmup_steps, cfg.schedule.cooldown_steps) == ("cosine", 0, 0)
    for path in sorted((REPO / "examples").glob("train_*.json")):
        raw = json.loads(path.read_text())
        cfg = parse_config("train", raw)
        assert cfg.model.preset == "tiny"
        assert cfg.optim == OptimConfig(**raw.get("optim", {})), path.name
        assert cfg.schedule == ScheduleConfig(**raw.get("schedule", {})), path.name


@pytest.mark.parametrize("field, value", [
    ("optim.vision_lr", 5.0), ("optim.vision_lr", 0.0), ("optim.language_lr", -1e-5),
    ("optim.language_lr", 2.0), ("optim.layer_decay", 1.5), ("optim.lr", 0.0),
    ("schedule.cooldown_steps", MAX_STEPS + 1), ("schedule.cooldown_steps", -1),
])
def test_bad_rates_are_refused_naming_the_field(field, value):
    section, leaf = field.split(".")
    for preset in ("tiny", "sam3"):
        with pytest.raises(ConfigError) as err:
            parse_config("train", {**BASE, "model": {"preset": preset}, section: {leaf: value}})
        assert any(p.startswith(field + ":") for p in err.value.problems), err.value.problems


def test_inverse_sqrt_with_upstreams_warmup_and_cooldown():
    """Upstream's InverseSquareRootParamScheduler with timescale = warmup = 20, cooldown 20:
    base / sqrt((step + 20 - 20) / 20) after warmup, times (total - step) / 20 near the end."""
    f = LrFactor(ScheduleConfig(**UPSTREAM_SCHEDULE), max_steps=200)
    assert f(0) == pytest.approx(1 / 21)  # our warmup starts above 0
    assert f(20) == pytest.approx(1.0)
    assert f(80) == pytest.approx(0.5)
    assert f(180) == pytest.approx((20 / 180) ** 0.5)
    assert f(190) == pytest.approx((20 / 190) ** 0.5 * 10 / 20)
    assert f(199) == pytest.approx((20 / 199) ** 0.5 / 20) and f(199) > 0
    no_cooldown = LrFactor(ScheduleConfig(name="cosine", min_lr_ratio=0.1), max_steps=16)
    assert no_cooldown(16) == pytest.approx(0.1)
