"""The shipped tiny training examples, run unchanged on the datasets `sam3v up` writes:
they finish, learn, show base vs final, and resume exactly from their middle checkpoint."""
from __future__ import annotations

import json

import pytest
import torch

from deploy.launcher import DEMO_DATASETS
from sam3_video.checkpoint import list_checkpoints, load
from sam3_video.data import write_synthetic
from tests.train.conftest import REPO, Launcher, left_by_a_stop, read_metrics, train_lines

HEADLINE = ("mask_ap", "hota", "cgf1", "j_and_f")


def _demo_data_root(root):
    """The demo datasets exactly as the launcher writes them."""
    for name, argv in DEMO_DATASETS.items():
        args = dict(zip(argv[::2], argv[1::2]))
        write_synthetic(root / name, videos=int(args["--videos"]), frames=int(args["--frames"]),
                        seed=int(args["--seed"]))
    return root


@pytest.fixture(scope="module")
def demo_launcher(tmp_path_factory) -> Launcher:
    root = tmp_path_factory.mktemp("examples")
    launcher = Launcher(_demo_data_root(root / "data"), root / "runs")
    launcher.runs_root.mkdir()
    return launcher


@pytest.fixture(scope="module")
def example_run(demo_launcher):
    """run(name) -> (config, run dir) of examples/<name>.json run once to the end."""
    done = {}

    def run(name: str):
        if name not in done:
            cfg = json.loads((REPO / "examples" / f"{name}.json").read_text())
            run_dir = demo_launcher.runs_root / name
            result = demo_launcher.run("train", cfg, run_dir, timeout=900)
            assert result.returncode == 0, result.stderr[-3000:]
            done[name] = cfg, run_dir
        return done[name]
    return run


@pytest.mark.slow
def test_train_tiny_example_learns_and_shows_base_vs_final(example_run):
    cfg, run_dir = example_run("train_tiny")
    losses = [m["loss"] for m in train_lines(run_dir)]
    assert len(losses) == cfg["max_steps"]
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < 0.8 * first, (first, last)

    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    base, final = evaluation["base"], evaluation["final"]
    for phase in (base, final):
        assert all(0.0 <= phase[k] <= 1.0 for k in HEADLINE), phase
    # Issue 12: the demo shows learning on the video metrics, the thresholded HOTA and J&F
    # (masklets scoring >= 0.5) included; cgF1 below.
    rising = ("mask_ap", "hota", "j_and_f")
    assert {k: final[k] for k in rising if not final[k] > max(base[k], 0.0)} == {}, (base, final)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 12, open: after the example's 200 steps from "
                   "random init the tiny detector's scores carry no presence (about 0.45 on "
                   "present and absent phrases alike), so cgF1's image-level MCC stays 0")
def test_train_tiny_example_raises_cgf1(example_run):
    _, run_dir = example_run("train_tiny")
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluation["final"]["cgf1"] > max(evaluation["base"]["cgf1"], 0.0), evaluation


@pytest.mark.slow
@pytest.mark.parametrize("name", ["train_tiny", "train_track_tiny"])
def test_example_resumed_from_its_middle_checkpoint_ends_bit_identical(name, example_run,
                                                                        demo_launcher):
    """Issue 18 on the examples as shipped: the uninterrupted run keeps its last
    `keep_last` checkpoints; the one before the end is what a run stopped there would have
    left. Resumed from it, every logged value, the final weights and the final evaluation
    equal the uninterrupted run's."""
    cfg, whole = example_run(name)
    steps = list_checkpoints(whole / "checkpoints")
    assert [s for s, _ in steps][-1] == cfg["max_steps"] and len(steps) >= 2, steps
    middle, middle_path = steps[-2]
    resumed = demo_launcher.runs_root / f"{name}-from-{middle}"
    left_by_a_stop(whole, resumed, middle, [middle_path])
    evaluation = json.loads((whole / "evaluation.json").read_text())
    (resumed / "evaluation.json").write_text(json.dumps({"base": evaluation["base"]}))

    result = demo_launcher.run("train", cfg, resumed, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"at step {middle}" in result.stdout, result.stdout[-2000:]

    def logged(run_dir):
        return [{k: v for k, v in m.items() if k not in ("time", "frames_per_s", "peak_mem_mb")}
                for m in read_metrics(run_dir)]
    want, got = logged(whole), logged(resumed)
    assert len(got) == len(want)
    assert [m for m, n in zip(got, want) if m != n] == []
    a, b = (load(dict(list_checkpoints(d / "checkpoints"))[cfg["max_steps"]])["model"]
            for d in (whole, resumed))
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert json.loads((resumed / "evaluation.json").read_text()) == evaluation
