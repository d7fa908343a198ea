"""Export: our checkpoint -> the upstream sam3.pt layout, accepted by sam3's own loader."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from sam3 import model_builder

from sam3_video import checkpoint
from sam3_video.config import ModelConfig
from sam3_video.detector.build import build_model
from sam3_video.weights import to_upstream_layout as export_state_dict

from .conftest import tiny_model

TRACKER_NECK = "backbone.vision_backbone.sam2_convs."
TRUNK = "backbone.vision_backbone.trunk."


def _export_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sam3_video.export", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def _training_checkpoint(model, path):
    """Shaped like the trainer's checkpoints: model + optimiser + RNG and other plain state."""
    torch.save({"model": model.state_dict(), "optimizer": {"state": {}, "param_groups": []},
                "step": 7, "rng": [checkpoint.rng_states()], "config": {"seed": 0}}, path)


def _predictions(model, batch) -> list[dict]:
    model.eval()
    with torch.no_grad():
        return [{k: out[k] for k in ("pred_logits", "pred_boxes", "pred_masks")} for out in model(batch)]


def test_export_loads_through_sam3s_loader_with_identical_outputs(tmp_path, clip_batch, capsys):
    trained = tiny_model(seed=1)
    _training_checkpoint(trained, tmp_path / "step_0000007.pt")
    result = _export_cli(tmp_path / "step_0000007.pt", tmp_path / "sam3_finetuned.pt")
    assert result.returncode == 0, result.stderr
    assert "detector.*" in result.stdout

    exported = torch.load(tmp_path / "sam3_finetuned.pt", weights_only=True)
    assert exported and all(k.startswith("detector.") for k in exported)

    fresh = tiny_model(seed=2)
    name = "transformer.decoder.query_embed.weight"
    assert not torch.equal(fresh.state_dict()[name], trained.state_dict()[name])
    # sam3's own path: model_builder._load_checkpoint strips "detector." and loads
    # non-strictly, printing the missing keys; nothing may be printed.
    capsys.readouterr()
    model_builder._load_checkpoint(fresh, str(tmp_path / "sam3_finetuned.pt"))
    assert "missing" not in capsys.readouterr().out
    loaded_keys = {k[len("detector."):] for k in exported}
    assert loaded_keys == set(fresh.state_dict())  # no missing, no unexpected

    for got, want in zip(_predictions(fresh, clip_batch), _predictions(trained, clip_batch)):
        for key in want:
            assert torch.equal(got[key], want[key]), key


def test_export_state_dict_layout():
    t = torch.zeros(2)
    layout = export_state_dict({"backbone.vision_backbone.trunk.pos_embed": t,
                                "module.transformer.decoder.query_embed.weight": t,
                                "tracker.maskmem_tpos_enc": t,
                                "detector.dot_prod_scoring.prompt_proj.weight": t})
    assert set(layout) == {"detector.backbone.vision_backbone.trunk.pos_embed",
                           "detector.transformer.decoder.query_embed.weight",
                           "tracker.maskmem_tpos_enc",
                           "detector.dot_prod_scoring.prompt_proj.weight"}


def _trained_on_base_trunk(base_model, seed):
    """A detect checkpoint's model: the base's trunk, everything after it retrained."""
    torch.manual_seed(seed)
    model = tiny_model(seed=seed)
    trunk = {k: v for k, v in base_model.state_dict().items() if k.startswith(TRUNK)}
    model.load_state_dict(trunk, strict=False)
    return model


def test_base_fills_what_detection_training_lacks(tmp_path):
    """A detector trained on the base's trunk without the tracker neck + an upstream-layout
    base that has it: the export holds every base tensor and loads strictly into the
    bigger model."""
    torch.manual_seed(3)
    with_neck = build_model(ModelConfig(), with_tracker_neck=True)
    torch.save(export_state_dict(with_neck.state_dict()), tmp_path / "base.pt")
    _training_checkpoint(_trained_on_base_trunk(with_neck, 4), tmp_path / "ckpt.pt")

    result = _export_cli(tmp_path / "ckpt.pt", tmp_path / "out.pt", "--base", tmp_path / "base.pt")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    exported = torch.load(tmp_path / "out.pt", weights_only=True)
    base = torch.load(tmp_path / "base.pt", weights_only=True)
    neck_keys = [k for k in base if k.startswith("detector." + TRACKER_NECK)]
    assert neck_keys and set(exported) == set(base)
    assert all(torch.equal(exported[k], base[k]) for k in neck_keys)
    detector = {k[len("detector."):]: v for k, v in exported.items()}
    build_model(ModelConfig(), with_tracker_neck=True).load_state_dict(detector, strict=True)


def test_a_retrained_trunk_is_not_paired_with_the_base_tracker(tmp_path):
    """Issue 12, defect 8: detect training updates the shared trunk by default; the base's
    tracker neck learned on the base's trunk. Export refuses that mix, naming the fixes,
    unless asked for it explicitly (then it warns)."""
    torch.manual_seed(3)
    with_neck = build_model(ModelConfig(), with_tracker_neck=True)
    torch.save(export_state_dict(with_neck.state_dict()), tmp_path / "base.pt")
    _training_checkpoint(tiny_model(seed=4), tmp_path / "ckpt.pt")  # its own trunk

    refused = _export_cli(tmp_path / "ckpt.pt", tmp_path / "out.pt", "--base", tmp_path / "base.pt")
    assert refused.returncode == 2, refused.stderr
    assert "trunk was retrained, but the tracker would come from the base" in refused.stderr
    assert "model.freeze.vision_backbone" in refused.stderr and "--allow-retrained-trunk" in refused.stderr
    assert not (tmp_path / "out.pt").exists()

    forced = _export_cli(tmp_path / "ckpt.pt", tmp_path / "out.pt", "--base", tmp_path / "base.pt",
                         "--allow-retrained-trunk")
    assert forced.returncode == 0, forced.stderr
    assert "warning: the tracker in" in forced.stderr and "retrained trunk" in forced.stderr
    assert (tmp_path / "out.pt").is_file()


class _Payload:
    """An object whose unpickling would run code: a weights-only load must refuse it."""

    def __reduce__(self):
        return (print, ("unpickled code ran",))


@pytest.mark.parametrize("content", [None, b"not a torch file", "list", "pickled object"])
def test_export_rejects_bad_checkpoints_naming_the_file(tmp_path, content):
    path = tmp_path / "bad.pt"
    if content == "list":
        torch.save([1, 2, 3], path)
    elif content == "pickled object":
        torch.save({"model": {"w": torch.zeros(1)}, "extra": _Payload()}, path)
    elif content is not None:
        path.write_bytes(content)
    result = _export_cli(path, tmp_path / "out.pt")
    assert result.returncode == 2
    assert str(path) in result.stderr
    assert "unpickled code ran" not in result.stdout + result.stderr
    assert not (tmp_path / "out.pt").exists()
