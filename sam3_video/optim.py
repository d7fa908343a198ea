"""AdamW with parameter groups, and the learning-rate schedules of a TrainConfig.

Groups, selected by parameter name as upstream sam3 does (its fine-tuning configs,
sam3/train/configs/roboflow_v100/roboflow_v100_full_ft_100_images.yaml, give
`backbone.vision_backbone.*` and `backbone.language_backbone.*` their own rates and
everything else the transformer's):
- `optim.language_lr` for `backbone.language_backbone.*` (the text encoder);
- `optim.vision_lr` for `backbone.vision_backbone.*`: the neck(s) at the full vision_lr,
  the ViT trunk (`backbone.vision_backbone.trunk.*`) with `optim.layer_decay` as upstream's
  layer_decay_param_modifier applies it: block i of a depth-D trunk gets decay^(D - i), its
  patch embedding and ln_pre decay^(D + 1), pos_embed 1 (upstream's '*pos_embed*' override);
- `optim.lr` for the rest (fusion encoder, decoder, heads, the tracker).
No weight decay for biases, norms, embeddings and positional tables (the usual ViT recipe).
"""
from __future__ import annotations

import math
import re

import torch

from sam3_video.config import OptimConfig, ScheduleConfig

_TRUNK_BLOCK = re.compile(r"(?:^|\.)trunk\.blocks\.(\d+)\.")
_TRUNK = re.compile(r"(?:^|\.)trunk\.")

VISION_PREFIX = "backbone.vision_backbone."
TRUNK_PREFIX = "backbone.vision_backbone.trunk."
LANGUAGE_PREFIX = "backbone.language_backbone."


def _no_decay(name: str, param: torch.Tensor) -> bool:
    return (param.ndim <= 1 or name.endswith(".bias") or "pos_embed" in name
            or "positional_embedding" in name or "token_embedding" in name)


def trunk_layer_id(name: str, depth: int) -> int:
    """0 for the trunk's embeddings, i + 1 for block i, depth + 1 for anything after the trunk."""
    m = _TRUNK_BLOCK.search(name)
    if m:
        return int(m.group(1)) + 1
    if _TRUNK.search(name):
        return 0
    return depth + 1


def module_of(name: str) -> str:
    """Which rate a parameter trains at: 'language', 'vision' or 'transformer'."""
    if name.startswith(LANGUAGE_PREFIX):
        return "language"
    if name.startswith(VISION_PREFIX):
        return "vision"
    return "transformer"


def layer_scale(name: str, depth: int, decay: float | None) -> float:
    """Layer-decay factor of one parameter (1 outside the vision trunk or without decay)."""
    if decay is None or not name.startswith(TRUNK_PREFIX) or "pos_embed" in name:
        return 1.0
    return decay ** (depth + 1 - trunk_layer_id(name, depth))


def module_rates(cfg: OptimConfig) -> dict[str, float]:
    return {"transformer": cfg.lr,
            "vision": cfg.lr if cfg.vision_lr is None else cfg.vision_lr,
            "language": cfg.lr if cfg.language_lr is None else cfg.language_lr}


def param_groups(model: torch.nn.Module, cfg: OptimConfig) -> list[dict]:
    """One group per (learning rate, weight decay), highest rate first, then decayed first:
    a fixed order, so a run and its resume map optimiser state identically. Modules whose
    rates coincide share a group, so a config with one rate has the two groups (decayed or
    not) that runs and checkpoints had before per-module rates existed. Each group's `lr`
    is its own base rate (the schedule multiplies it), `lr_scale` its layer-decay factor,
    `modules` the modules it holds."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model.freeze: every parameter is frozen, nothing to train")
    # Depth from every trunk parameter, trainable or not (upstream: len(trunk.blocks)).
    depth = 1 + max((int(m.group(1)) for n, _ in model.named_parameters()
                     if n.startswith(TRUNK_PREFIX) and (m := _TRUNK_BLOCK.search(n))), default=-1)
    rates = module_rates(cfg)
    groups: dict[tuple[float, float], dict] = {}
    for name, p in named:
        module = module_of(name)
        scale = layer_scale(name, depth, cfg.layer_decay)
        wd = 0.0 if _no_decay(name, p) else cfg.weight_decay
        lr = rates[module] * scale
        g = groups.setdefault((lr, wd), {"params": [], "names": [], "lr": lr, "weight_decay": wd,
                                         "lr_scale": scale, "modules": []})
        g["params"].append(p)
        g["names"].append(name)
        if module not in g["modules"]:
            g["modules"].append(module)
    return [groups[k] for k in sorted(groups, key=lambda k: (-k[0], -k[1]))]


def logged_group(optimizer: torch.optim.Optimizer) -> int:
    """Index of the group whose rate the trainer logs as `lr`: the transformer's full rate."""
    for i, g in enumerate(optimizer.param_groups):
        if "transformer" in g.get("modules", ()) and g.get("lr_scale", 1.0) == 1.0:
            return i
    return 0


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    groups = param_groups(model, cfg)
    for g in groups:
        del g["names"]  # AdamW keeps unknown keys in state_dict; names only bloat checkpoints
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


class LrFactor:
    """Multiplier of the base lr at an optimiser step."""

    def __init__(self, cfg: ScheduleConfig, max_steps: int):
        self.name = cfg.name
        self.warmup = cfg.warmup_steps
        self.cooldown = cfg.cooldown_steps
        self.min_ratio = cfg.min_lr_ratio
        self.max_steps = max_steps

    def __call__(self, step: int) -> float:
        factor = self._shape(step)
        if self.cooldown:  # upstream's InverseSquareRootParamScheduler cooldown: linear to 0
            factor *= min(1.0, max(0, self.max_steps - step) / self.cooldown)
        return factor

    def _shape(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        if self.name == "constant":
            return 1.0
        if self.name == "inverse_sqrt":
            # upstream's rate / sqrt((step + timescale - warmup) / timescale), timescale = warmup
            # (its configs set both to 20)
            return max(self.min_ratio, math.sqrt(max(self.warmup, 1) / max(step, 1)))
        span = max(1, self.max_steps - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig,
                    max_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    factor = LrFactor(cfg, max_steps)
    # A plain function, not the object: LambdaLR then saves only its step count, so a
    # resumed run follows the schedule of ITS config, not one pickled in the checkpoint.
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: factor(step))
