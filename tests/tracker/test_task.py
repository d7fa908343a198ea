"""The `track` task's config checks and parameter freezing."""
from __future__ import annotations

import pytest

from sam3_video.config import ConfigError, TrainConfig
from sam3_video.tasks import get_task


def config(**overrides) -> TrainConfig:
    data = {"train": "train", "val": "val", "frames_per_clip": 3, **overrides.pop("data", {})}
    return TrainConfig.model_validate({"task": "track", "data": data, "max_steps": 1, "gpus": 0, **overrides})


def trainable(model, prefix: str) -> set[bool]:
    return {p.requires_grad for n, p in model.named_parameters() if n.startswith(prefix)}


def test_check_names_the_fields(clips_root, monkeypatch):
    monkeypatch.setenv("DATA_ROOT", str(clips_root))
    get_task(config()).check()  # both datasets exist and are valid
    with pytest.raises(ConfigError) as err:
        get_task(config(data={"frames_per_clip": 1, "train": "missing"})).check()
    text = str(err.value)
    assert "data.frames_per_clip" in text and "data.train" in text


def test_trunk_frozen_by_default():
    model = get_task(config()).build_model()
    assert trainable(model, "backbone.vision_backbone.trunk.") == {False}
    assert trainable(model, "backbone.vision_backbone.convs.") == {False}  # detector's neck
    assert trainable(model, "backbone.vision_backbone.sam2_convs.") == {True}
    assert trainable(model, "tracker.") == {True}


def test_trunk_and_neck_switches():
    model = get_task(config(track={"train_trunk": True})).build_model()
    assert trainable(model, "backbone.vision_backbone.trunk.") == {True}
    frozen = get_task(config(track={"train_trunk": True}, model={"freeze": {"vision_backbone": True}})).build_model()
    assert trainable(frozen, "backbone.") == {False}
    assert trainable(frozen, "tracker.") == {True}
