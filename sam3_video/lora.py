"""Parameter-efficient fine-tuning: freezing by name pattern, and LoRA adapters via peft.

- `apply_freeze_patterns`: model.freeze.include / exclude, fnmatch globs over parameter
  names; each pattern must match a parameter (else a ConfigError naming the field).
- `add_adapters`: model.lora, peft's `inject_adapter_in_model` on the named nn.Linear
  modules. The model keeps its class and forward; a wrapped layer's base weight moves
  from `<name>.weight` to `<name>.base_layer.weight` and its adapters are
  `<name>.lora_A.default.weight` / `<name>.lora_B.default.weight`.
- `merge_adapters`: peft's merge of every adapter into its base layer, which then takes
  the wrapper's place again: the model's state dict has the plain (upstream) keys.
  `merged_state_dict` gives the same tensors without touching the model (the tracker's
  evaluation loads them into sam3's predictor in the middle of training).
- A LoRA training checkpoint holds only what trains (`trainable_state`) plus a record of
  the frozen base (`base_record`: model.init and the seed of a random init), which a
  resumed run, the exporter and the evaluator rebuild the base from.

peft is imported only when a job uses LoRA.
"""
from __future__ import annotations

import fnmatch
import re

import torch
from torch import nn

from sam3_video.config import ConfigError, FreezeConfig, LoraConfig, ModelConfig, weights_path

ADAPTER_NAME = "default"
LORA_KEY = "lora"   # a LoRA checkpoint's entry: {"config": LoraConfig dump, "base": base_record}


def _matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern)


def unmatched_patterns(names: list[str], patterns: list[str], field: str, what: str) -> list[str]:
    """One problem per pattern in `patterns` that matches none of `names`."""
    return [f"{field}[{i}]: {pattern!r} matches no {what}"
            for i, pattern in enumerate(patterns) if not any(_matches(n, pattern) for n in names)]


def apply_freeze_patterns(model: nn.Module, freeze: FreezeConfig, *, prefixes: tuple[str, ...] = (),
                          model_name: str = "model", field: str = "model.freeze") -> None:
    """Freeze every parameter whose name starts with one of `prefixes` (the booleans of
    model.freeze, mapped by the task) or matches `freeze.include`, unless it matches
    `freeze.exclude`. Nothing is ever unfrozen here: a parameter the builder froze (unused
    by the forward) stays frozen."""
    names = [n for n, _ in model.named_parameters()]
    problems = (unmatched_patterns(names, freeze.include, f"{field}.include", f"parameter of the {model_name}")
                + unmatched_patterns(names, freeze.exclude, f"{field}.exclude", f"parameter of the {model_name}"))
    if problems:
        raise ConfigError(problems)
    for name, param in model.named_parameters():
        frozen = name.startswith(prefixes) or any(_matches(name, p) for p in freeze.include)
        if frozen and not any(_matches(name, p) for p in freeze.exclude):
            param.requires_grad_(False)


def count_parameters(model: nn.Module) -> dict[str, int]:
    return {"total": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}


# ---------------------------------------------------------------------------- adapters

def target_modules(model: nn.Module, lora: LoraConfig, model_name: str = "model",
                   field: str = "model.lora") -> list[str]:
    """The names of the modules `lora.targets` selects; every pattern must match one, and
    every match must be a plain nn.Linear (an nn.MultiheadAttention's out_proj, a
    NonDynamicallyQuantizableLinear, is read by weight and would bypass its adapter)."""
    modules = dict(model.named_modules())
    problems, selected = [], []
    for i, pattern in enumerate(lora.targets):
        hits = [n for n in modules if n and _matches(n, pattern)]
        if not hits:
            problems.append(f"{field}.targets[{i}]: {pattern!r} matches no module of the {model_name}")
            continue
        wrong = [n for n in hits if type(modules[n]) is not nn.Linear]
        if wrong:
            problems.append(f"{field}.targets[{i}]: {pattern!r} matches {wrong[0]} "
                            f"({type(modules[wrong[0]]).__name__}); LoRA targets plain nn.Linear modules only")
            continue
        selected += [n for n in hits if n not in selected]
    if problems:
        raise ConfigError(problems)
    return selected


def add_adapters(model: nn.Module, lora: LoraConfig, model_name: str = "model",
                 field: str = "model.lora") -> nn.Module:
    """Inject LoRA adapters into `model` (in place) and leave trainable only the adapters
    and those base parameters matching `lora.train` that were trainable before."""
    import peft

    train_names = [n for n, _ in model.named_parameters()]
    problems = unmatched_patterns(train_names, lora.train, f"{field}.train", f"parameter of the {model_name}")
    if problems:
        raise ConfigError(problems)
    keep = {n for n, p in model.named_parameters()
            if p.requires_grad and any(_matches(n, pat) for pat in lora.train)}
    names = target_modules(model, lora, model_name, field)
    config = peft.LoraConfig(
        r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, bias="none",
        # a regex string is matched whole against each module name: exactly these modules
        target_modules="|".join(re.escape(n) for n in names))
    peft.inject_adapter_in_model(config, model, adapter_name=ADAPTER_NAME)
    for name, param in model.named_parameters():
        if "lora_" in name:
            param.requires_grad_(True)
        else:
            param.requires_grad_(_base_name(name) in keep)
    return model


def _base_name(name: str) -> str:
    """A wrapped layer's parameter name as the unwrapped model has it."""
    return name.replace(".base_layer.", ".")


def merge_adapters(model: nn.Module) -> nn.Module:
    """Merge every adapter into its base layer (peft's merge) and put the base layer back
    in the wrapper's place, in place: the state dict then has the unwrapped keys only."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    wrapped = [(n, m) for n, m in model.named_modules() if isinstance(m, BaseTunerLayer)]
    for name, layer in wrapped:
        layer.merge()
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer.get_base_layer())
    return model


def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """`model`'s state dict as merge_adapters would leave it (plain keys, each adapted
    weight = base weight + peft's delta), computed without changing the model. A model
    without adapters gives its own state dict."""
    state = model.state_dict()
    if not any(".lora_" in k for k in state):
        return state  # (and peft stays unimported)
    from peft.tuners.tuners_utils import BaseTunerLayer

    wrapped = {n: m for n, m in model.named_modules() if isinstance(m, BaseTunerLayer)}
    adapter_keys = tuple(f"{n}.lora_" for n in wrapped)
    merged = {_base_name(k): v for k, v in state.items() if not k.startswith(adapter_keys)}
    with torch.no_grad():
        for name, layer in wrapped.items():
            weight = layer.get_base_layer().weight
            merged[f"{name}.weight"] = weight + sum(layer.get_delta_weight(a) for a in layer.active_adapters)
    return merged


# ---------------------------------------------------------------------------- checkpoints

def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """What a LoRA checkpoint keeps of the model: the parameters that train."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def base_record(cfg: ModelConfig, seed: int) -> dict:
    """What the frozen base of a LoRA run was built from: its preset, model.init (a
    resolved path) and, for a random init only, the seed the trainer built it under."""
    init = None
    if cfg.init is not None:
        init = cfg.init.model_dump(mode="json")
        if cfg.init.path:  # absolute, as the base was read (a bare trainer gets relative ones)
            init["path"] = str(weights_path(cfg.init.path, "model.init.path"))
    return {"preset": cfg.preset, "init": init, "seed": int(seed) if cfg.init is None else None}


def lora_entry(cfg: ModelConfig, seed: int) -> dict:
    return {"config": cfg.lora.model_dump(mode="json"), "base": base_record(cfg, seed)}


def lora_of_checkpoint(blob: object) -> dict | None:
    """The LORA_KEY entry of a LoRA training checkpoint's content, else None."""
    if isinstance(blob, dict) and isinstance(blob.get(LORA_KEY), dict):
        return blob[LORA_KEY]
    return None


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load a LoRA checkpoint's tensors into a freshly built and wrapped model: they must
    be exactly its trainable parameters."""
    expected = {n for n, p in model.named_parameters() if p.requires_grad}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ConfigError([f"{where}: the LoRA checkpoint does not fit the model "
                           f"({len(missing)} trainable tensors missing, e.g. {missing[:2]}; "
                           f"{len(unexpected)} unexpected, e.g. {unexpected[:2]})"])
    result = model.load_state_dict(state, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys
