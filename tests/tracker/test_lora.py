"""model.lora on the track task (peft adapters on the tracker): what trains, that it learns,
a checkpoint of adapters only, exact resume, export merged into upstream-layout tracker
weights that sam3's predictor loads strictly, and an evaluation job on the adapter
checkpoint that scores as the trainer did."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from sam3_video.checkpoint import list_checkpoints, load
from sam3_video.config import DEFAULT_TRACK_LORA_TARGETS, ConfigError, TrainConfig
from sam3_video.data import write_synthetic
from sam3_video.lora import merge_adapters, merged_state_dict
from sam3_video.tracker.build import build_track_model
from sam3_video.tracker.evaluate import build_predictor, evaluate_tracking
from sam3_video.tracker.export import upstream_state_dict
from sam3_video.tracker.loss import MultiStepMultiMaskLoss
from sam3_video.tracker.prompts import sample_prompt_plan
from sam3_video.tracker.task import TrackTask
from tests.train.conftest import left_by_a_stop

from .conftest import IMAGE_SIZE
from .test_track_job import read_metrics, run_program, run_train, track_config

MEMORY_ATTENTION = "tracker.transformer.encoder.layers.0."
MASK_DECODER = "tracker.sam_mask_decoder.transformer."


def track_model(seed: int = 0, **lora):
    cfg = TrainConfig.model_validate({"task": "track", "data": {"train": "x"}, "max_steps": 1,
                                      "model": {"preset": "tiny", "lora": lora}})
    torch.manual_seed(seed)
    return TrackTask(cfg).build_model()


def trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def adapted_layers(model) -> set[str]:
    return {n.split(".lora_")[0] for n in trainable(model) if ".lora_" in n}


def test_a_track_job_gets_the_tracker_targets_by_default():
    cfg = TrainConfig.model_validate({"task": "track", "data": {"train": "x"}, "max_steps": 1,
                                      "model": {"lora": {"rank": 2}}})
    assert cfg.model.lora.targets == DEFAULT_TRACK_LORA_TARGETS
    assert TrainConfig.model_validate(cfg.model_dump(mode="json")) == cfg  # a stored spec
    own = {"task": "track", "data": {"train": "x"}, "max_steps": 1,
           "model": {"lora": {"targets": ["tracker.obj_ptr_proj.layers.*"]}}}
    assert TrainConfig.model_validate(own).model.lora.targets == ["tracker.obj_ptr_proj.layers.*"]


def test_only_the_adapters_train_on_the_tracker_attention_and_mlps():
    model = track_model(rank=4)
    names = trainable(model)
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names)
    layers = adapted_layers(model)
    for expected in ("self_attn.q_proj", "self_attn.out_proj", "cross_attn_image.k_proj",
                     "cross_attn_image.v_proj", "linear1", "linear2"):
        assert MEMORY_ATTENTION + expected in layers, expected
    for expected in ("layers.0.self_attn.q_proj", "layers.1.cross_attn_token_to_image.v_proj",
                     "layers.0.cross_attn_image_to_token.out_proj", "layers.0.mlp.lin1",
                     "layers.1.mlp.lin2", "final_attn_token_to_image.q_proj"):
        assert MASK_DECODER + expected in layers, expected
    assert not any(n.startswith("backbone.") for n in layers)  # the shared trunk stays
    total = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for n, p in model.named_parameters() if n in names) < 0.05 * total

    heads = track_model(rank=2, targets=["tracker.transformer.encoder.layers.*.linear1"],
                        train=["tracker.obj_ptr_proj.*"])
    base = {n for n in trainable(heads) if ".lora_" not in n}
    assert base and all(n.startswith("tracker.obj_ptr_proj.") for n in base)
    assert adapted_layers(heads) == {"tracker.transformer.encoder.layers.0.linear1",
                                     "tracker.transformer.encoder.layers.1.linear1"}


def test_a_track_target_must_be_a_plain_linear_that_exists():
    with pytest.raises(ConfigError) as err:
        track_model(targets=["tracker.maskmem_backbone.mask_downsampler.*", "tracker.nothing"])
    assert [p.split(":")[0] for p in err.value.problems] == ["model.lora.targets[0]",
                                                               "model.lora.targets[1]"]
    assert "plain nn.Linear" in err.value.problems[0]
    assert "matches no module of the tiny track model" in err.value.problems[1]


def test_track_lora_lowers_the_loss_of_a_fixed_batch(clip_batch):
    torch.set_num_threads(1)
    model = track_model(rank=8).train()
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    torch.manual_seed(1)
    plan = sample_prompt_plan(clip_batch.masks, model.tracker.track_config, kind="mask")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    loss_fn, losses = MultiStepMultiMaskLoss(), []
    for _ in range(8):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(clip_batch.images, list(clip_batch.img_ids), clip_batch.masks, plan),
                       clip_batch.masks)["loss"]
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses
    after = dict(model.named_parameters())
    assert all(torch.equal(after[n], v) for n, v in frozen_before.items())  # the base is frozen


def test_merged_state_dict_is_the_merge_without_changing_the_model(clips_root):
    model = track_model(rank=4)
    with torch.no_grad():  # adapters that change the output (lora_B starts at zero)
        for name, param in model.named_parameters():
            if ".lora_B." in name:
                param.normal_(std=0.05)
    merged = merged_state_dict(model)
    assert any(".lora_" in k for k in model.state_dict())  # still wrapped
    # sam3's predictor (strict load of the merged tracker) scores as the wrapped model does
    via_predictor = evaluate_tracking(model, clips_root / "val")
    via_training = evaluate_tracking(model, clips_root / "val", path="training")
    assert abs(via_predictor["j_and_f"] - via_training["j_and_f"]) < 0.01
    merge_adapters(model)
    plain = model.state_dict()
    assert merged.keys() == plain.keys()
    assert all(torch.allclose(merged[k], plain[k], atol=1e-6) for k in plain)


# ---------------------------------------------------------------- through the programs

def lora_track_config(**overrides) -> dict:
    return track_config(model={"preset": "tiny", "lora": {"rank": 4}}, max_steps=4,
                        checkpoint_every=2, **overrides)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """A tiny LoRA track job, 4 steps, evaluated before and after: (data root, run dir)."""
    root = tmp_path_factory.mktemp("track-lora")
    data_root = root / "data"
    write_synthetic(data_root / "synthetic", videos=2, frames=4, seed=0)
    write_synthetic(data_root / "synthetic-val", videos=1, frames=4, seed=1)
    return data_root, run_train(root / "whole", data_root, lora_track_config(), timeout=300)


def checkpoint_at(run_dir, step: int):
    return dict(list_checkpoints(run_dir / "checkpoints"))[step]


def test_track_lora_checkpoint_holds_only_the_adapters(lora_run, tmp_path):
    _, run_dir = lora_run
    state = load(checkpoint_at(run_dir, 4))
    assert state["lora"]["base"] == {"preset": "tiny", "init": None, "seed": 0}
    assert state["lora"]["config"]["targets"] == DEFAULT_TRACK_LORA_TARGETS
    assert state["model"] and all(".lora_" in k for k in state["model"])
    # a full checkpoint holds at least the whole model (and its optimiser state besides)
    torch.save(build_track_model("tiny", IMAGE_SIZE).state_dict(), tmp_path / "model.pt")
    full, small = (tmp_path / "model.pt").stat().st_size, checkpoint_at(run_dir, 4).stat().st_size
    print(f"track checkpoint: LoRA {small} B, the model alone {full} B")
    assert small <= 0.2 * full, (small, full)
    counts = read_metrics(run_dir)[0]
    assert counts["params_trainable"] < 0.05 * counts["params_total"]
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert 0.0 <= evaluation["final"]["j_and_f"] <= 1.0


def test_track_lora_resume_ends_with_the_uninterrupted_run(lora_run, tmp_path):
    data_root, whole = lora_run
    resumed = tmp_path / "runs" / "job-1"
    left_by_a_stop(whole, resumed, 2, [checkpoint_at(whole, 2)])
    evaluation = json.loads((whole / "evaluation.json").read_text())
    (resumed / "evaluation.json").write_text(json.dumps({"base": evaluation["base"]}))
    run_train(tmp_path, data_root, lora_track_config(), timeout=300)

    a, b = (load(checkpoint_at(d, 4)) for d in (whole, resumed))
    assert a["model"].keys() == b["model"].keys()
    assert [k for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])] == []
    assert json.loads((resumed / "evaluation.json").read_text()) == evaluation

    def logged(run_dir):
        return [{k: v for k, v in m.items() if k not in ("time", "frames_per_s", "peak_mem_mb")}
                for m in read_metrics(run_dir)]
    assert logged(resumed) == logged(whole)


def test_track_lora_export_merges_into_strictly_loading_weights(lora_run, tmp_path):
    data_root, run_dir = lora_run
    out = tmp_path / "exported.pt"
    run_program([sys.executable, "-m", "sam3_video.export", str(checkpoint_at(run_dir, 4)), str(out)],
                data_root, run_dir.parent, timeout=240)
    exported = torch.load(out, weights_only=True)
    assert not [k for k in exported if "lora_" in k or "base_layer" in k]
    torch.manual_seed(0)  # the run's base: random init under its seed
    base_model = build_track_model("tiny", IMAGE_SIZE)
    base = upstream_state_dict(base_model)
    assert exported.keys() == base.keys()
    changed = {k for k in base if not torch.equal(base[k], exported[k])}
    # only the adapted layers' weights moved (TrackModel's tracker.* names are sam3.pt's)
    assert changed and {k.rsplit(".", 1)[0] for k in changed} <= adapted_layers(track_model(rank=4))
    predictor = build_predictor(base_model, exported=exported)  # sam3's class, strict
    assert torch.equal(predictor.transformer.encoder.layers[0].linear1.weight,
                       exported[MEMORY_ATTENTION + "linear1.weight"])


def test_an_eval_job_on_the_adapter_checkpoint_scores_as_the_trainer(lora_run, tmp_path):
    data_root, run_dir = lora_run
    final = json.loads((run_dir / "evaluation.json").read_text())["final"]
    config = tmp_path / "eval.json"
    config.write_text(json.dumps({
        "task": "track", "model": {"preset": "tiny", "init": {"path": str(checkpoint_at(run_dir, 4))}},
        "data": {"dataset": "synthetic-val"}, "gpus": 0}))
    eval_dir = run_dir.parent / "job-2"
    run_program([sys.executable, "-m", "sam3_video.evaluate", "--config", str(config),
                 "--run-dir", str(eval_dir)], data_root, run_dir.parent, timeout=300)
    metrics = json.loads((eval_dir / "results.json").read_text())["metrics"]
    for name in ("j_and_f", "j_and_f_no_memory"):  # merged weights, same clips
        assert metrics[name] == pytest.approx(final[name], abs=1e-5), name


def test_a_detect_lora_checkpoint_is_no_track_init():
    from sam3_video.tracker.build import merged_lora_checkpoint

    blob = {"model": {}, "lora": {"config": {}, "base": {}}, "config": {"task": "detect"}}
    with pytest.raises(ConfigError, match="model.init.path: a LoRA checkpoint of a 'detect' job"):
        merged_lora_checkpoint(blob, field="model.init.path")
