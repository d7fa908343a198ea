"""PredictConfig: what a predict job must name, how its video path resolves (under
DATA_ROOT, as datasets do), and the shipped example."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sam3_video.config import (ConfigError, PredictConfig, dataset_fields, input_fields,
                               parse_config, resolve_paths, video_problem)

REPO = Path(__file__).resolve().parents[2]


def problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config("predict", data)
    return err.value.problems


def test_video_and_phrases_are_required_and_named():
    assert problems({"data": {"phrases": ["red square"]}}) == ["data.video: Field required"]
    assert problems({"data": {"video": "v"}}) == [
        "data.phrases: task 'detect' needs at least one noun phrase"]
    assert problems({"data": {"video": "v", "phrases": ["  "]}})[0].startswith("data.phrases.0:")
    assert problems({"data": {"video": "v", "phrases": ["x"], "max_frames": 0}})[0].startswith(
        "data.max_frames:")
    assert problems({"data": {"video": "v", "phrases": ["x"], "fps": 0}})[0].startswith("data.fps:")
    assert problems({"data": {"video": "v", "phrases": ["x"], "typo": 1}})[0].startswith("data.typo:")


def track(*prompts, **data) -> dict:
    return {"task": "track", "data": {"video": "v", "prompts": list(prompts), **data}}


def test_track_needs_prompts_each_with_exactly_one_kind():
    assert problems(track())[0].startswith("data.prompts: task 'track' needs at least one prompt")
    none = problems(track({"frame": 0}))
    assert none[0].startswith("data.prompts.0:") and "exactly one" in none[0]
    both = problems(track({"box": [1, 2, 3, 4], "mask": "m.png"}))
    assert both[0].startswith("data.prompts.0:") and "got mask, box" in both[0]
    assert problems(track({"box": [1, 2, 0, 4]}))[0].startswith("data.prompts.0.box:")
    assert problems(track({"box": [1, 2, 3]}))[0].startswith("data.prompts.0.box:")
    assert problems(track({"points": [[1, 2, 5]]}))[0].startswith("data.prompts.0.points:")
    assert problems(track({"points": []}))[0].startswith("data.prompts.0.points:")
    late = problems(track({"frame": 9, "box": [1, 2, 3, 4]}, max_frames=5))
    assert late[0].startswith("data.prompts.0.frame:") and "max_frames" in late[0]
    assert problems(track({"box": [1, 2, 3, 4]}, phrases=["x"]))[0].startswith("data.phrases:")
    detect_with_prompts = {"data": {"video": "v", "phrases": ["x"], "prompts": [{"box": [1, 2, 3, 4]}]}}
    assert problems(detect_with_prompts)[0].startswith("data.prompts:")


def test_a_prompt_mask_resolves_under_data_root_as_the_video_does(tmp_path):
    cfg = parse_config("predict", track({"mask": "masks/a.png"}, {"frame": 2, "box": [1, 2, 3, 4]}))
    assert input_fields(cfg) == {"data.video": "v", "data.prompts.0.mask": "masks/a.png"}
    resolved = resolve_paths(cfg, data_root=tmp_path)
    assert resolved.data.prompts[0].mask == str(tmp_path.resolve() / "masks" / "a.png")
    assert cfg.data.prompts[0].mask == "masks/a.png"
    bad = parse_config("predict", track({"mask": "/etc/passwd"}))
    with pytest.raises(ConfigError) as err:
        resolve_paths(bad, data_root=tmp_path)
    assert err.value.problems[0].startswith("data.prompts.0.mask:")


def test_phrases_are_trimmed_and_defaults_are_evals():
    cfg = parse_config("predict", {"data": {"video": "v", "phrases": [" red square "]}})
    assert isinstance(cfg, PredictConfig) and cfg.data.phrases == ["red square"]
    assert cfg.score_threshold == parse_config("eval", {"data": {"dataset": "d"}}).score_threshold
    assert cfg.max_masklets is None and cfg.data.max_frames is None


def test_the_video_resolves_under_data_root_and_is_no_dataset(tmp_path):
    data, runs = tmp_path / "data", tmp_path / "data" / "runs"
    (data / "clips").mkdir(parents=True)
    runs.mkdir()
    cfg = parse_config("predict", {"data": {"video": "clips/a.mp4", "phrases": ["x"]}})
    assert dataset_fields(cfg) == {} and input_fields(cfg) == {"data.video": "clips/a.mp4"}
    resolved = resolve_paths(cfg, data_root=data, runs_root=runs)
    assert resolved.data.video == str((data / "clips" / "a.mp4").resolve())
    assert cfg.data.video == "clips/a.mp4"  # the stored spec keeps what the user wrote
    for outside, reason in (("../elsewhere.mp4", "lies outside DATA_ROOT"),
                            (str(runs / "job-1" / "x.mp4"), "lies under RUNS_ROOT")):
        bad = parse_config("predict", {"data": {"video": outside, "phrases": ["x"]}})
        with pytest.raises(ConfigError) as err:
            resolve_paths(bad, data_root=data, runs_root=runs)
        assert err.value.problems[0].startswith("data.video:") and reason in err.value.problems[0]


def test_video_problem_accepts_frame_folders_and_mp4_files_only(tmp_path):
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "00000.jpg").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    (tmp_path / "clip.MP4").write_bytes(b"")
    (tmp_path / "clip.avi").write_bytes(b"")
    assert video_problem(tmp_path / "frames") is None and video_problem(tmp_path / "clip.MP4") is None
    assert "no frame files" in video_problem(tmp_path / "empty")
    assert ".mp4" in video_problem(tmp_path / "clip.avi")
    assert "not found" in video_problem(tmp_path / "missing")


def test_the_shipped_example_is_a_valid_predict_config():
    cfg = parse_config("predict", json.loads((REPO / "examples" / "predict_tiny.json").read_text()))
    assert cfg.data.video == "synthetic-val/JPEGImages/video_000" and cfg.gpus == 0
