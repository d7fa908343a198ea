"""A base to beat (issue 12): fine-tuning a model that is already good must make it better
on new data, and the recipe must matter.

No real sam3.pt exists here, so a session fixture makes a stand-in: a tiny detector trained
from random init on the synthetic shapes. It is fine-tuned on a new distribution (the same
colours on new shapes under new phrases) with the default recipe and with every rate x100,
each job scoring the new set's held-out clips before and after training, read back as
GET /jobs/{id} shows them (evaluation.base/final/delta).

Not met yet (strict xfail, so it fails once it passes): the default recipe raising all four
video metrics over the base; see the marker's reason. The recipes and datasets are
bench/fine_tune_vs_base.py's, whose figures BENCHMARKS.md records.
"""
from __future__ import annotations

import pytest

import jobstore
from api import views
from bench.fine_tune_vs_base import (BAD_OPTIM, BASE_STEPS, DATASETS, HEADLINE, base_config,
                                     fine_tune_config)
from sam3_video.data import write_synthetic
from tests.train.conftest import Launcher


def job_evaluation(run_dir) -> dict:
    """The evaluation of a train job whose run directory is `run_dir`, as the API serves it
    (from the evaluation.json the trainer wrote; no database row is read for it)."""
    evaluation = views.evaluation(None, jobstore.Job(kind="train"), run_dir)
    assert evaluation is not None, f"{run_dir}: no evaluation.json"
    return evaluation


@pytest.fixture(scope="session")
def base_to_beat(tmp_path_factory):
    """(launcher, the base's checkpoint, the base job's evaluation on its own held-out shapes)."""
    root = tmp_path_factory.mktemp("base-to-beat")
    launcher = Launcher(root / "data", root / "runs")
    launcher.runs_root.mkdir()
    for name, kwargs in DATASETS.items():
        write_synthetic(launcher.data_root / name, **kwargs)
    run_dir = launcher.runs_root / "base"
    result = launcher.run("train", base_config(), run_dir, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return launcher, run_dir / "checkpoints" / f"step_{BASE_STEPS:07d}.pt", job_evaluation(run_dir)


@pytest.fixture(scope="session")
def fine_tunes(base_to_beat) -> dict[str, dict]:
    """recipe -> the fine-tune job's evaluation on the new set's held-out clips."""
    launcher, checkpoint, _ = base_to_beat
    evaluations = {}
    for name, optim in (("default", None), ("lr x100", BAD_OPTIM)):
        run_dir = launcher.runs_root / f"fine-tune-{name.replace(' ', '-')}"
        result = launcher.run("train", fine_tune_config(checkpoint, optim), run_dir, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        evaluations[name] = job_evaluation(run_dir)
    return evaluations


@pytest.mark.slow
def test_the_base_is_good_on_its_own_distribution(base_to_beat):
    evaluation = base_to_beat[2]
    base, final = evaluation["base"], evaluation["final"]
    assert all(base[k] == 0.0 for k in ("mask_ap", "hota", "j_and_f")), base  # random init
    assert final["mask_ap"] > 0.1 and final["hota"] > 0.05 and final["j_and_f"] > 0.05, final


@pytest.mark.slow
def test_default_recipe_learns_the_new_shapes(fine_tunes):
    """Per frame, the fine-tune segments the new shapes far better than the base did."""
    evaluation = fine_tunes["default"]
    base, delta = evaluation["base"], evaluation["delta"]
    assert base["mask_ap"] > 0.0 and base["j_and_f"] > 0.0, base  # the base knows the colours
    assert delta["frame_mask_ap50"] > 0.1, evaluation
    assert all(delta[k] == pytest.approx(evaluation["final"][k] - base[k]) for k in HEADLINE)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 12, open: measured 0.136 -> 0.082 mask AP, "
                   "HOTA 0.076 -> 0, J&F 0.254 -> 0, cgF1 0 -> 0. The stand-in base's scores "
                   "sit near 0.5 with no presence (alike on present and absent phrases); 100 "
                   "fine-tuning steps lower them to 0.22-0.42 (with negative_ratio 0 as well), "
                   "under the 0.5 that HOTA, cgF1 and J&F count from")
def test_default_recipe_improves_every_video_metric_of_the_base(fine_tunes):
    delta = fine_tunes["default"]["delta"]
    assert {k: delta[k] for k in HEADLINE if not delta[k] > 0} == {}, fine_tunes["default"]


@pytest.mark.slow
def test_every_rate_x100_does_worse_than_the_default(fine_tunes):
    default, bad = fine_tunes["default"]["final"], fine_tunes["lr x100"]["final"]

    def mean(final):
        return sum(final[k] for k in HEADLINE) / len(HEADLINE)

    assert mean(bad) < mean(default), (default, bad)
    assert bad["mask_ap"] < default["mask_ap"], (default, bad)
    assert bad["frame_mask_ap50"] < default["frame_mask_ap50"], (default, bad)
