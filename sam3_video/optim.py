"""AdamW with parameter groups, and the learning-rate schedules of a TrainConfig.

Groups: no weight decay for biases, norms, embeddings and positional tables (the usual
ViT recipe); with `optim.layer_decay` set, the ViT trunk's lr shrinks geometrically towards
the input (block i of a depth-D trunk gets lr * decay^(D - i), its patch/position embeddings
decay^(D + 1)); everything after the trunk (neck, encoder, decoder, heads) gets the full lr.
"""
from __future__ import annotations

import math
import re

import torch

from sam3_video.config import OptimConfig, ScheduleConfig

_TRUNK_BLOCK = re.compile(r"(?:^|\.)trunk\.blocks\.(\d+)\.")
_TRUNK = re.compile(r"(?:^|\.)trunk\.")


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


def param_groups(model: torch.nn.Module, cfg: OptimConfig) -> list[dict]:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model.freeze: every parameter is frozen, nothing to train")
    depth = 1 + max((int(m.group(1)) for n, _ in named if (m := _TRUNK_BLOCK.search(n))), default=-1)
    groups: dict[tuple[float, float], dict] = {}
    for name, p in named:
        scale = 1.0
        if cfg.layer_decay is not None:
            scale = cfg.layer_decay ** (depth + 1 - trunk_layer_id(name, depth))
        wd = 0.0 if _no_decay(name, p) else cfg.weight_decay
        g = groups.setdefault((scale, wd), {"params": [], "names": [], "lr": cfg.lr * scale,
                                            "weight_decay": wd, "lr_scale": scale})
        g["params"].append(p)
        g["names"].append(name)
    # A fixed group order keeps optimiser state aligned between a run and its resume.
    return [groups[k] for k in sorted(groups, key=lambda k: (-k[0], -k[1]))]


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
        self.min_ratio = cfg.min_lr_ratio
        self.max_steps = max_steps

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        if self.name == "constant":
            return 1.0
        if self.name == "inverse_sqrt":
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
