"""Bad configs and bad datasets stop the trainer and the evaluator BEFORE anything is
trained, with exit code 2 and a message that names the field or the file."""
from __future__ import annotations

import json
import shutil

import pytest

from sam3_video import evaluate, exit_codes, train
from tests.train.conftest import tiny_train_config


def _broken_copy(data_root, name: str) -> str:
    """A copy of the synthetic dataset under DATA_ROOT/<name>, for breaking."""
    target = data_root / name
    if not target.exists():
        shutil.copytree(data_root / "synthetic", target)
    return name


def test_bad_config_exits_2_as_a_process(launcher, runs_root):
    run_dir = runs_root / "bad"
    proc = launcher.run("train", tiny_train_config(optim={"lr": 1e-3, "momentum": 0.9}), run_dir)
    assert proc.returncode == exit_codes.CONFIG_ERROR
    assert "optim.momentum" in proc.stderr
    assert not (run_dir / "metrics.jsonl").exists() and not (run_dir / "checkpoints").exists()


def test_missing_frame_exits_2_naming_the_file(launcher, runs_root, data_root):
    name = _broken_copy(data_root, "missing-frame")
    annotations = json.loads((data_root / name / "annotations.json").read_text())
    frame = annotations["videos"][1]["file_names"][2]
    (data_root / name / "JPEGImages" / frame).unlink()
    run_dir = runs_root / "missing"
    proc = launcher.run("train", tiny_train_config(data={"train": name}), run_dir)
    assert proc.returncode == exit_codes.CONFIG_ERROR, proc.stderr[-2000:]
    assert "data.train" in proc.stderr and frame in proc.stderr
    assert not (run_dir / "metrics.jsonl").exists()


def _run_main(module, cfg: dict, tmp_path, capsys) -> tuple[int, str]:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(cfg))
    code = module.main(["--config", str(config), "--run-dir", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists(), "nothing may be written before the checks pass"
    return code, capsys.readouterr().err


@pytest.fixture
def env(monkeypatch, data_root, runs_root):
    monkeypatch.setenv("DATA_ROOT", str(data_root))
    monkeypatch.setenv("RUNS_ROOT", str(runs_root))


@pytest.mark.parametrize("overrides, named", [
    ({"max_steps": 0}, "max_steps"),
    ({"data": {"train": "synthetic", "frame_stride_min": 3, "frame_stride_max": 2}}, "data"),
    ({"data": {"train": "no-such-dataset"}}, "data.train"),
    ({"data": {"train": "../outside"}}, "data.train"),
    ({"data": {"train": "synthetic", "val": "no-such-val"}}, "data.val"),
    ({"data": {"train": "synthetic", "frames_per_clip": 20}}, "data.frames_per_clip"),
    ({"model": {"preset": "tiny", "init": {"path": "weights/absent.pt"}}}, "model.init.path"),
    ({"task": "segment"}, "task"),
])
def test_bad_train_config_is_refused(overrides, named, env, tmp_path, capsys):
    code, err = _run_main(train, tiny_train_config(**overrides), tmp_path, capsys)
    assert code == exit_codes.CONFIG_ERROR
    assert named in err


def test_broken_annotations_are_refused(env, data_root, tmp_path, capsys):
    name = _broken_copy(data_root, "broken-json")
    (data_root / name / "annotations.json").write_text("{not json")
    code, err = _run_main(train, tiny_train_config(data={"train": name}), tmp_path, capsys)
    assert code == exit_codes.CONFIG_ERROR
    assert "data.train" in err and "annotations.json" in err


def test_unreadable_config_file_is_named(env, tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text("{")
    assert train.main(["--config", str(config), "--run-dir", str(tmp_path / "run")]) == 2
    assert str(config) in capsys.readouterr().err


def test_bad_eval_config_is_refused(env, tmp_path, capsys):
    cfg = {"model": {"preset": "tiny"}, "data": {"dataset": "no-such-dataset"}, "gpus": 0}
    code, err = _run_main(evaluate, cfg, tmp_path, capsys)
    assert code == exit_codes.CONFIG_ERROR
    assert "data.dataset" in err
