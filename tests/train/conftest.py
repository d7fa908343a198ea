"""Fixtures for the trainer/evaluator tests: a DATA_ROOT with small synthetic datasets and
a helper that runs the real programs (python -m / torchrun) as subprocesses."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sam3_video.data import write_synthetic
from tests.support.configs import with_overrides

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TIMEOUT_S = 240  # a hung process (e.g. gloo at exit) fails the test instead of the suite


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_synthetic(root / "synthetic", videos=3, frames=6, seed=0)
    write_synthetic(root / "synthetic-val", videos=1, frames=4, seed=1)
    write_synthetic(root / "two-frames", videos=1, frames=2, seed=2)
    return root


@pytest.fixture
def runs_root(tmp_path) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    return root


def tiny_train_config(**overrides) -> dict:
    """A few-step tiny config; nested dicts in overrides are merged one level deep."""
    cfg = {
        "task": "detect",
        "model": {"preset": "tiny"},
        "data": {"train": "synthetic", "frames_per_clip": 3, "batch_size_per_gpu": 2},
        "optim": {"lr": 1e-3},
        "schedule": {"name": "constant"},
        "max_steps": 4,
        "grad_clip": 1.0,
        "checkpoint_every": 100,
        "keep_last": 3,
        "gpus": 0,
    }
    return with_overrides(cfg, overrides)


@dataclass
class Launcher:
    data_root: Path
    runs_root: Path

    def env(self) -> dict:
        env = dict(os.environ)
        env.update(DATA_ROOT=str(self.data_root), RUNS_ROOT=str(self.runs_root),
                   OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        return env

    def write_config(self, cfg: dict, name: str = "config.json") -> Path:
        path = self.runs_root / name
        path.write_text(json.dumps(cfg))
        return path

    def command(self, program: str, config: Path, run_dir: Path, nproc: int | None) -> list[str]:
        args = ["-m", f"sam3_video.{program}", "--config", str(config), "--run-dir", str(run_dir)]
        if nproc is None:
            return [sys.executable, *args]
        return [str(BIN / "torchrun"), "--standalone", f"--nproc_per_node={nproc}", *args]

    def run(self, program: str, cfg: dict, run_dir: Path, nproc: int | None = None,
            timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
        config = self.write_config(cfg, f"{run_dir.name}.json")
        # Own session: on a timeout the whole tree (torchrun, ranks, their children) is
        # killed, so a hung run fails this test without leaving processes behind.
        proc = subprocess.Popen(self.command(program, config, run_dir, nproc), env=self.env(),
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError(f"{program} did not finish in {timeout}s:\n{(out + err)[-3000:]}")
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def start(self, program: str, cfg: dict, run_dir: Path, log: Path) -> subprocess.Popen:
        config = self.write_config(cfg, f"{run_dir.name}.json")
        out = open(log, "w")
        return subprocess.Popen(self.command(program, config, run_dir, None), env=self.env(),
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, text=True)


@pytest.fixture
def launcher(data_root, runs_root) -> Launcher:
    return Launcher(data_root, runs_root)


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def train_lines(run_dir: Path) -> list[dict]:
    return [m for m in read_metrics(run_dir) if "loss" in m]


def left_by_a_stop(whole: Path, run_dir: Path, step: int, checkpoints: list[Path]) -> None:
    """Make `run_dir` what the run `whole` would have left had it stopped after `step`:
    these of its checkpoints and its metrics.jsonl lines up to that step."""
    (run_dir / "checkpoints").mkdir(parents=True)
    for path in checkpoints:
        shutil.copy(path, run_dir / "checkpoints")
    with open(whole / "metrics.jsonl") as f:
        lines = [line for line in f if json.loads(line)["step"] <= step]
    (run_dir / "metrics.jsonl").write_text("".join(lines))
