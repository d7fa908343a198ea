"""The job spec: unknown keys and bad values fail with messages that name the field."""
import json

import pytest

from sam3_video.config import (ConfigError, EvalConfig, TrainConfig, data_path, load_config_file,
                               parse_config, weights_path)

MINIMAL_TRAIN = {"data": {"train": "synthetic"}, "max_steps": 10}


def problems(kind, data):
    with pytest.raises(ConfigError) as info:
        parse_config(kind, data)
    return info.value.problems


def test_minimal_train_config_gets_defaults():
    cfg = parse_config("train", MINIMAL_TRAIN)
    assert isinstance(cfg, TrainConfig)
    assert cfg.task == "detect" and cfg.model.preset == "tiny"
    assert cfg.checkpoint_every == 100 and cfg.amp == "auto"


def test_unknown_keys_are_named_at_any_depth():
    bad = {**MINIMAL_TRAIN, "data": {"train": "x", "frame_per_clip": 3}, "learning_rate": 1}
    assert sorted(problems("train", bad)) == [
        "data.frame_per_clip: Extra inputs are not permitted",
        "learning_rate: Extra inputs are not permitted",
    ]


def test_bad_values_name_their_field():
    lines = problems("train", {"data": {"train": "x", "frames_per_clip": 0}, "max_steps": "many"})
    assert any(line.startswith("data.frames_per_clip:") for line in lines)
    assert any(line.startswith("max_steps:") for line in lines)


def test_cross_field_rules():
    lines = problems("train", {"data": {"train": "x", "frame_stride_min": 3, "frame_stride_max": 1},
                               "max_steps": 1})
    assert lines and lines[0].startswith("data:") and "frame_stride_max" in lines[0]
    lines = problems("train", {**MINIMAL_TRAIN, "track": {"prob_mask": 0.9}})
    assert lines[0].startswith("track:") and "must be 1" in lines[0]


def test_missing_required_field():
    assert problems("eval", {"data": {}}) == ["data.dataset: Field required"]


def test_unknown_kind():
    assert problems("export", {})[0].startswith("kind:")


def test_eval_config_parses():
    cfg = parse_config("eval", {"data": {"dataset": "synthetic-val"},
                                "model": {"init": {"job_id": 3, "checkpoint": "latest"}}})
    assert isinstance(cfg, EvalConfig) and cfg.model.init.job_id == 3


def test_job_file_envelope_and_bare(tmp_path):
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(MINIMAL_TRAIN))
    envelope = tmp_path / "job.json"
    envelope.write_text(json.dumps({"kind": "train", "job_id": 1, "config": MINIMAL_TRAIN}))
    assert load_config_file(bare, "train") == load_config_file(envelope, "train")
    with pytest.raises(ConfigError, match="kind"):
        load_config_file(envelope, "eval")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="broken.json: not valid JSON"):
        load_config_file(broken, "train")


def test_paths_resolve_under_data_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "synthetic").mkdir(parents=True)
    outside = tmp_path / "secret"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    monkeypatch.setenv("DATA_ROOT", str(root))
    monkeypatch.delenv("RUNS_ROOT", raising=False)
    assert data_path("synthetic", "data.train") == (root / "synthetic").resolve()
    assert data_path(str(root / "synthetic"), "data.train") == (root / "synthetic").resolve()
    for bad in ("../secret", str(outside), "escape"):
        with pytest.raises(ConfigError, match="data.train: .* lies outside DATA_ROOT"):
            data_path(bad, "data.train")


def test_weights_may_come_from_runs_root(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    ckpt = runs / "job-1" / "checkpoints" / "step_0000010.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    monkeypatch.setenv("DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("RUNS_ROOT", str(runs))
    assert weights_path(str(ckpt), "model.init.path") == ckpt.resolve()
    with pytest.raises(ConfigError, match="model.init.path"):
        data_path(str(ckpt), "model.init.path")


def test_unset_data_root_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("DATA_ROOT", raising=False)
    with pytest.raises(ConfigError, match="data.train: DATA_ROOT is not set"):
        data_path("synthetic", "data.train")


def test_unusable_paths_are_config_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_ROOT", str(tmp_path))
    for bad in ("a\x00b", "\x00"):
        with pytest.raises(ConfigError, match="data.train: .* not a usable path"):
            data_path(bad, "data.train")


def test_sam3_image_size_must_tile_its_position_table():
    """sam3's ViT tiles a 336 px position table: a multiple of 14 that is not one of 336
    is refused for preset sam3 (train and eval), naming data.image_size and why."""
    for size in (994, 1022, 700, 14 * 50):
        lines = problems("train", {**MINIMAL_TRAIN, "model": {"preset": "sam3"},
                                   "data": {"train": "x", "image_size": size}})
        assert len(lines) == 1 and lines[0].startswith("data.image_size: "), lines
        assert f"{size} is not a multiple of 336" in lines[0] and "position table" in lines[0]
        lines = problems("eval", {"model": {"preset": "sam3"},
                                  "data": {"dataset": "x", "image_size": size}})
        assert len(lines) == 1 and lines[0].startswith("data.image_size: "), lines
    for size in (336, 672, 1008, 1344, None):  # whole tiles, or the preset's own 1008
        assert parse_config("train", {**MINIMAL_TRAIN, "model": {"preset": "sam3"},
                                      "data": {"train": "x", "image_size": size}}).data.image_size == size
        assert parse_config("eval", {"model": {"preset": "sam3"},
                                     "data": {"dataset": "x", "image_size": size}}).data.image_size == size
    # tiny keeps any multiple of 14; a non-multiple of 14 keeps its own message
    assert parse_config("train", {"data": {"train": "x", "image_size": 126}, "max_steps": 1})
    lines = problems("train", {**MINIMAL_TRAIN, "model": {"preset": "sam3"},
                               "data": {"train": "x", "image_size": 1000}})
    assert lines and "multiple of 14" in lines[0]


def test_negative_ratio_is_a_fraction():
    assert parse_config("train", MINIMAL_TRAIN).data.negative_ratio == 0.3
    for ratio in (0, 0.5, 1):
        cfg = parse_config("train", {**MINIMAL_TRAIN, "data": {"train": "x", "negative_ratio": ratio}})
        assert cfg.data.negative_ratio == ratio
    for bad in (-0.1, 1.5, "some"):
        lines = problems("train", {**MINIMAL_TRAIN, "data": {"train": "x", "negative_ratio": bad}})
        assert lines and lines[0].startswith("data.negative_ratio:"), lines
