"""model.freeze patterns and model.lora: bounded, every error naming its field."""
from __future__ import annotations

import pytest

from sam3_video.config import (DEFAULT_LORA_TARGETS, MAX_PATTERN_LEN, MAX_PATTERNS, ConfigError,
                               parse_config)


def train(model: dict) -> dict:
    return {"model": model, "data": {"train": "d"}, "max_steps": 1}


def problems(model: dict) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config("train", train(model))
    return err.value.problems


def test_defaults_keep_the_old_meaning():
    cfg = parse_config("train", train({}))
    assert cfg.model.lora is None
    assert cfg.model.freeze.include == [] and cfg.model.freeze.exclude == []
    lora = parse_config("train", train({"lora": {}})).model.lora
    assert (lora.rank, lora.alpha, lora.dropout, lora.train) == (8, 16.0, 0.0, [])
    assert lora.targets == DEFAULT_LORA_TARGETS


def test_freeze_patterns_parse_and_round_trip():
    model = {"freeze": {"vision_backbone": True, "include": ["transformer.*"],
                        "exclude": ["transformer.decoder.*"]}}
    cfg = parse_config("train", train(model))
    assert cfg.model.freeze.include == ["transformer.*"]
    again = parse_config("train", cfg.model_dump(mode="json"))
    assert again == cfg


@pytest.mark.parametrize("freeze, field", [
    ({"include": ["x"] * (MAX_PATTERNS + 1)}, "model.freeze.include"),
    ({"exclude": ["a" * (MAX_PATTERN_LEN + 1)]}, "model.freeze.exclude.0"),
    ({"include": [""]}, "model.freeze.include.0"),
    ({"include": "trunk.*"}, "model.freeze.include"),
    ({"patterns": ["x"]}, "model.freeze.patterns"),
])
def test_bad_freeze_patterns_name_the_field(freeze, field):
    assert any(p.startswith(field + ":") for p in problems({"freeze": freeze})), problems({"freeze": freeze})


@pytest.mark.parametrize("lora, field", [
    ({"rank": 0}, "model.lora.rank"),
    ({"rank": 100_000}, "model.lora.rank"),
    ({"alpha": 0}, "model.lora.alpha"),
    ({"dropout": 1.0}, "model.lora.dropout"),
    ({"targets": []}, "model.lora.targets"),
    ({"targets": ["x"] * (MAX_PATTERNS + 1)}, "model.lora.targets"),
    ({"train": ["a" * (MAX_PATTERN_LEN + 1)]}, "model.lora.train.0"),
    ({"r": 4}, "model.lora.r"),
])
def test_bad_lora_settings_name_the_field(lora, field):
    found = problems({"lora": lora})
    assert any(p.startswith(field + ":") for p in found), found
