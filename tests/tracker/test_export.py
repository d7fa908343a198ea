"""Export in the upstream layout, strict loading into sam3's predictor, initial weights."""
from __future__ import annotations

import pytest
import torch

from sam3_video.config import ConfigError
from sam3_video.tracker.build import build_track_model
from sam3_video.tracker.evaluate import build_predictor, evaluate_tracking
from sam3_video.tracker.export import tracker_state_dict, upstream_state_dict
from sam3_video.weights import load_track_model_weights
from sam3_video.weights import track_model_weights as from_upstream_state_dict

from .conftest import IMAGE_SIZE


def load_initial_weights(model, path):
    load_track_model_weights(model, path, model.preset)


def test_no_backbone_weight_is_stored_twice(tiny_model):
    keys = list(tiny_model.state_dict())
    assert not any(k.startswith("tracker.backbone") for k in keys)
    assert any(k.startswith("backbone.vision_backbone.sam2_convs.") for k in keys)


def test_export_layout_and_round_trip(tiny_model):
    exported = upstream_state_dict(tiny_model)
    assert all(k.startswith(("tracker.", "detector.backbone.vision_backbone.")) for k in exported)
    assert {k for k in exported if k.startswith("tracker.")} == set(tracker_state_dict(tiny_model))
    back = from_upstream_state_dict(exported)
    own = tiny_model.state_dict()
    assert set(back) == set(own)
    assert all(torch.equal(back[k], own[k]) for k in own)


def test_predictor_loads_exported_tracker_strictly(tiny_model):
    with torch.no_grad():
        tiny_model.tracker.obj_ptr_proj.layers[0].weight.add_(1.0)  # a value the export must carry
    predictor = build_predictor(tiny_model)
    assert predictor.backbone is None
    assert torch.equal(predictor.obj_ptr_proj.layers[0].weight, tiny_model.tracker.obj_ptr_proj.layers[0].weight)


def test_predictor_path_matches_training_class(tiny_model, clips_root):
    via_predictor = evaluate_tracking(tiny_model, clips_root / "val")
    via_training = evaluate_tracking(tiny_model, clips_root / "val", path="training")
    assert via_predictor["objects"] == via_training["objects"] > 0
    assert abs(via_predictor["j_and_f"] - via_training["j_and_f"]) < 0.01
    assert 0.0 <= via_predictor["j_and_f"] <= 1.0


def test_initial_weights_from_an_upstream_layout_file(tiny_model, tmp_path):
    path = tmp_path / "sam3.pt"
    torch.save(upstream_state_dict(tiny_model), path)
    torch.manual_seed(123)
    fresh = build_track_model("tiny", IMAGE_SIZE)
    load_initial_weights(fresh, path)
    assert all(torch.equal(v, tiny_model.state_dict()[k]) for k, v in fresh.state_dict().items())


def test_detector_only_file_leaves_tracker_random(tiny_model, tmp_path):
    path = tmp_path / "detector.pt"
    torch.save({k: v for k, v in upstream_state_dict(tiny_model).items() if k.startswith("detector.")}, path)
    fresh = build_track_model("tiny", IMAGE_SIZE)
    tracker_before = tracker_state_dict(fresh)
    load_initial_weights(fresh, path)
    assert torch.equal(fresh.backbone.vision_backbone.trunk.patch_embed.proj.weight,
                       tiny_model.backbone.vision_backbone.trunk.patch_embed.proj.weight)
    assert all(torch.equal(v, tracker_state_dict(fresh)[k]) for k, v in tracker_before.items())


def test_bad_initial_weights_name_the_field(tmp_path):
    model = build_track_model("tiny", IMAGE_SIZE)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="model.init.path"):
        load_initial_weights(model, broken)
    wrong = tmp_path / "wrong.pt"
    torch.save({"tracker.no_obj_ptr": torch.zeros(3)}, wrong)
    with pytest.raises(ConfigError, match="model.init.path.*lacks|has shape"):
        load_initial_weights(model, wrong)


class _Payload:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_initial_weights_never_unpickle_objects(tmp_path, capsys):
    """The track task used to load a user's file with weights_only=False."""
    model = build_track_model("tiny", IMAGE_SIZE)
    path = tmp_path / "payload.pt"
    torch.save({"model": upstream_state_dict(model), "extra": _Payload()}, path)
    with pytest.raises(ConfigError, match="model.init.path: .*not a plain tensor checkpoint"):
        load_initial_weights(model, path)
    assert "unpickled code ran" not in capsys.readouterr().out
