"""model.freeze patterns and model.lora (peft adapters) on the detect task: what trains,
that it learns, small checkpoints, exact resume, merged export, evaluation."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from sam3_video.backbone.presets import TINY
from sam3_video.checkpoint import list_checkpoints, load
from sam3_video.config import ConfigError, FreezeConfig, LoraConfig, ModelConfig
from sam3_video.detector.build import build_model
from tests.detector.conftest import clip_batch, fit_losses, synthetic_root  # noqa: F401 (fixtures)
from tests.train.conftest import REPO, read_metrics, tiny_train_config, train_lines

BLOCK0 = "backbone.vision_backbone.trunk.blocks.0."
BLOCK1 = "backbone.vision_backbone.trunk.blocks.1."


def tiny(seed: int = 0, **fields) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelConfig(preset="tiny", **fields))


def trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


# ---------------------------------------------------------------- freeze patterns

def test_freeze_include_and_exclude_patterns():
    plain = trainable(tiny())
    model = tiny(freeze=FreezeConfig(include=[BLOCK0 + "*"], exclude=[BLOCK0 + "attn.*"]))
    frozen = plain - trainable(model)
    assert frozen and all(n.startswith(BLOCK0) and ".attn." not in n for n in frozen)
    assert {n for n in plain if n.startswith(BLOCK0 + "attn.")} <= trainable(model)
    assert {n for n in plain if n.startswith(BLOCK1)} <= trainable(model)
    # the booleans still work, and exclude also re-enables what they freeze
    model = tiny(freeze=FreezeConfig(vision_backbone=True, exclude=[BLOCK1 + "*"]))
    vision = {n for n in plain if n.startswith("backbone.vision_backbone.")}
    assert trainable(model) & vision == {n for n in vision if n.startswith(BLOCK1)}


def test_freeze_never_unfreezes_what_the_builder_froze():
    plain = tiny()
    unused = {n for n, p in plain.named_parameters() if not p.requires_grad}
    assert unused  # compat.freeze_detector_unused_params
    model = tiny(freeze=FreezeConfig(include=["*"], exclude=["*"]))
    assert trainable(model) == trainable(plain)


@pytest.mark.parametrize("field", ["include", "exclude"])
def test_a_pattern_matching_nothing_is_a_config_error_naming_the_field(field):
    with pytest.raises(ConfigError) as err:
        tiny(freeze=FreezeConfig(**{field: [BLOCK0 + "*", "no.such.module.*"]}))
    assert err.value.problems == [
        f"model.freeze.{field}[1]: 'no.such.module.*' matches no parameter of the tiny detect model"]


# ---------------------------------------------------------------- LoRA in process

def test_lora_trains_only_the_adapters_and_the_chosen_base_parameters():
    model = tiny(lora=LoraConfig())
    names = trainable(model)
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names)
    wrapped = {n.split(".lora_")[0] for n in names}
    assert f"{BLOCK0}attn.qkv" in wrapped and "transformer.decoder.layers.0.linear1" in wrapped
    total = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for n, p in model.named_parameters() if n in names) < 0.02 * total

    heads = tiny(lora=LoraConfig(train=["dot_prod_scoring.*"],
                                 targets=["transformer.decoder.layers.*.linear1"]))
    base = {n for n in trainable(heads) if "lora_" not in n}
    assert base and all(n.startswith("dot_prod_scoring.") for n in base)
    assert {n.split(".lora_")[0] for n in trainable(heads) if "lora_" in n} == {
        f"transformer.decoder.layers.{i}.linear1" for i in range(TINY.decoder_layers)}


def test_lora_target_must_be_a_plain_linear_that_exists():
    with pytest.raises(ConfigError) as err:
        tiny(lora=LoraConfig(targets=["transformer.decoder.layers.0.self_attn.out_proj",
                                      "nothing.here"]))
    assert [p.split(":")[0] for p in err.value.problems] == ["model.lora.targets[0]",
                                                               "model.lora.targets[1]"]
    assert "plain nn.Linear" in err.value.problems[0]


def test_lora_lowers_the_loss_of_a_fixed_batch(clip_batch):  # noqa: F811
    model = tiny(lora=LoraConfig())
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    losses = fit_losses(model, clip_batch, lr=1e-2)
    assert losses[-1] < 0.9 * losses[0], losses
    after = dict(model.named_parameters())
    assert all(torch.equal(after[n], v) for n, v in frozen_before.items())  # the base is frozen


# ---------------------------------------------------------------- LoRA through the trainer

def lora_config(**overrides) -> dict:
    return tiny_train_config(model={"preset": "tiny", "lora": {"rank": 4}},
                             checkpoint_every=2, **overrides)


def checkpoint_at(run_dir, step: int):
    return dict(list_checkpoints(run_dir / "checkpoints"))[step]


def run_ok(launcher, cfg, run_dir):
    proc = launcher.run("train", cfg, run_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_lora_checkpoint_is_small_and_counts_are_logged(launcher, runs_root):
    full, small = runs_root / "full", runs_root / "lora"
    run_ok(launcher, tiny_train_config(), full)
    proc = run_ok(launcher, lora_config(), small)

    full_size = checkpoint_at(full, 4).stat().st_size
    lora_size = checkpoint_at(small, 4).stat().st_size
    print(f"checkpoint sizes: full {full_size} B, LoRA {lora_size} B")
    assert lora_size <= 0.2 * full_size, (lora_size, full_size)

    for run_dir in (full, small):
        first = read_metrics(run_dir)[0]
        assert first["step"] == 0 and "loss" not in first
        assert isinstance(first["params_total"], int) and isinstance(first["params_trainable"], int)
        assert 0 < first["params_trainable"] <= first["params_total"]
        assert [m["step"] for m in train_lines(run_dir)] == [1, 2, 3, 4]
        assert sum("params_total" in m for m in read_metrics(run_dir)) == 1
    counts = read_metrics(small)[0]
    assert counts["params_trainable"] < 0.02 * counts["params_total"]
    assert f"parameters: {counts['params_total']} total, {counts['params_trainable']} trainable" in proc.stdout

    state = load(checkpoint_at(small, 4))
    assert state["lora"]["base"] == {"preset": "tiny", "init": None, "seed": 0}
    assert state["model"] and all("lora_" in k for k in state["model"])


def test_lora_resume_ends_with_the_uninterrupted_weights(launcher, runs_root):
    whole, resumed = runs_root / "whole", runs_root / "resumed"
    cfg = lora_config()
    run_ok(launcher, cfg, whole)
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copy(checkpoint_at(whole, 2), resumed / "checkpoints")
    proc = run_ok(launcher, cfg, resumed)
    assert "at step 2" in proc.stdout
    a, b = (load(checkpoint_at(d, 4))["model"] for d in (whole, resumed))
    assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == []
    assert sum("params_total" in m for m in read_metrics(resumed)) == 0  # written once per run

    # another base (a random init drawn under another seed) is refused, naming the field
    other = runs_root / "other-base"
    (other / "checkpoints").mkdir(parents=True)
    shutil.copy(checkpoint_at(whole, 2), other / "checkpoints")
    proc = launcher.run("train", {**cfg, "seed": 1}, other)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "model.init" in proc.stderr and "refusing to resume" in proc.stderr


def test_lora_export_merges_and_evaluation_matches_the_trainers(launcher, runs_root, data_root):
    train_dir = runs_root / "job-1"
    cfg = lora_config(data={"val": "synthetic-val", "batch_size_per_gpu": 1})
    run_ok(launcher, cfg, train_dir)
    ckpt = checkpoint_at(train_dir, 4)

    out = runs_root / "exported.pt"
    proc = subprocess.run([sys.executable, "-m", "sam3_video.export", str(ckpt), str(out)],
                          capture_output=True, text=True, timeout=240, cwd=REPO, env=launcher.env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    exported = torch.load(out, weights_only=True)
    assert not [k for k in exported if "lora_" in k or "base_layer" in k]
    assert all(k.startswith("detector.") for k in exported)
    detector = tiny(seed=0)  # the run's base: random init under seed 0
    base = {k: v.clone() for k, v in detector.state_dict().items()}
    detector.load_state_dict({k[len("detector."):]: v for k, v in exported.items()}, strict=True)
    qkv = f"detector.{BLOCK0}attn.qkv.weight"
    assert not torch.equal(exported[qkv], base[qkv[len("detector."):]])  # adapters merged in
    untouched = "detector.transformer.decoder.query_embed.weight"
    assert torch.equal(exported[untouched], base[untouched[len("detector."):]])  # frozen base

    final = json.loads((train_dir / "evaluation.json").read_text())["final"]
    eval_dir = runs_root / "job-2"
    envelope = {"kind": "eval", "job_id": 2, "attempt": 1, "config": {
        "task": "detect", "model": {"preset": "tiny", "init": {"path": str(ckpt)}},
        "data": {"dataset": str(data_root / "synthetic-val")}, "gpus": 0}}
    proc = launcher.run("evaluate", envelope, eval_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((eval_dir / "results.json").read_text())["metrics"]
    assert {"mask_ap", "frame_box_ap"} <= set(metrics)
    for name, value in metrics.items():  # merged weights, same clips: the trainer's numbers
        assert value == pytest.approx(final[name], abs=1e-5), name


def test_track_task_applies_freeze_patterns():
    from sam3_video.config import TrainConfig
    from sam3_video.tracker.task import TrackTask

    def build(freeze: dict):
        cfg = TrainConfig.model_validate({"task": "track", "data": {"train": "x"}, "max_steps": 1,
                                          "model": {"preset": "tiny", "freeze": freeze}})
        torch.manual_seed(0)
        return TrackTask(cfg).build_model()

    plain = trainable(build({}))
    model = build({"include": ["tracker.maskmem_backbone.*"],
                   "exclude": ["tracker.maskmem_backbone.fuser.*"]})
    frozen = plain - trainable(model)
    assert frozen and all(n.startswith("tracker.maskmem_backbone.") and ".fuser." not in n
                          for n in frozen)
    with pytest.raises(ConfigError) as err:
        build({"include": ["detector.*"]})
    assert err.value.problems == [
        "model.freeze.include[0]: 'detector.*' matches no parameter of the tiny track model"]


def test_lora_on_a_base_file_exports_that_base_and_resume_checks_it(launcher, runs_root, data_root):
    base_model = tiny(seed=5)
    base = {k: v.clone() for k, v in base_model.state_dict().items()}
    torch.save(base, data_root / "lora-base.pt")
    torch.save(tiny(seed=6).state_dict(), data_root / "other-base.pt")
    model = {"preset": "tiny", "init": {"path": "lora-base.pt"}, "lora": {"rank": 2}}
    cfg = tiny_train_config(model=model, max_steps=2, checkpoint_every=1)
    run_dir = runs_root / "on-file"
    run_ok(launcher, cfg, run_dir)
    ckpt = checkpoint_at(run_dir, 2)
    record = load(ckpt)["lora"]["base"]
    assert record["init"]["path"] == str(data_root / "lora-base.pt") and record["seed"] is None

    out = runs_root / "on-file.pt"
    proc = subprocess.run([sys.executable, "-m", "sam3_video.export", str(ckpt), str(out)],
                          capture_output=True, text=True, timeout=240, cwd=REPO, env=launcher.env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    exported = {k[len("detector."):]: v for k, v in torch.load(out, weights_only=True).items()}
    assert exported.keys() == base.keys()
    changed = {k for k in base if not torch.equal(base[k], exported[k])}
    assert changed and all(k.rsplit(".", 1)[0].endswith(("qkv", "proj", "fc1", "fc2", "linear1", "linear2"))
                           for k in changed)  # only the adapted layers, merged

    # the same run directory with another base file: refused, naming model.init
    other = {**cfg, "model": {**model, "init": {"path": "other-base.pt"}}}
    (run_dir / "checkpoints" / "step_0000002.pt").unlink()  # resume from step 1
    proc = launcher.run("train", other, run_dir)
    assert proc.returncode == 2 and "refusing to resume" in proc.stderr, proc.stderr[-3000:]
