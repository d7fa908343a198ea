"""Each sam3 0.1.4 workaround in sam3_video.compat does its job (CPU machine)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sam3_video import compat
from sam3_video.config import ConfigError

HERE = Path(__file__).parent
REPO = HERE.parent.parent
needs_cpu_only = pytest.mark.skipif(compat.has_accelerator(), reason="checks the CPU-only path")


@needs_cpu_only
def test_pin_memory_guard_is_scoped():
    tensor = torch.zeros(3)
    with pytest.raises(RuntimeError):
        tensor.pin_memory()  # what upstream's geometry encoder hits on a CPU
    with compat.cpu_pin_memory_guard():
        with compat.cpu_pin_memory_guard():  # re-entrant
            assert tensor.pin_memory() is tensor
        assert tensor.pin_memory() is tensor
    with pytest.raises(RuntimeError):
        tensor.pin_memory()  # restored afterwards


def test_focal_loss_on_cpu_uses_the_torch_branch():
    compat.install_cpu_focal_loss()
    compat.install_cpu_focal_loss()  # idempotent: wraps once
    from sam3.train.loss import loss_fns

    wrapper = loss_fns.sigmoid_focal_loss
    assert not getattr(wrapper.__wrapped__, "_sam3_video_cpu_safe", False)
    torch.manual_seed(0)
    logits, targets = torch.randn(4, 10), (torch.rand(4, 10) > 0.5).float()
    got = wrapper(logits, targets, 2.0, alpha=0.25, gamma=2)
    want = wrapper.__wrapped__(logits, targets, 2.0, alpha=0.25, gamma=2, triton=False)
    assert torch.isfinite(got) and torch.equal(got, want)


def test_loss_normalization_without_process_group():
    assert compat.loss_normalization() == "local"
    assert compat.loss_normalization(distributed=True) == "local"  # no group: all_reduce would fail


def test_bpe_vocab_is_the_byte_identical_file():
    path = compat.bpe_vocab_path()
    assert hashlib.md5(Path(path).read_bytes()).hexdigest() == "933b7abbbbde62c36f02f0e6ccde464f"


def test_missing_bpe_vocab_says_what_to_install(tmp_path):
    """An open_clip package without the vocab file shadows the real one."""
    (tmp_path / "open_clip").mkdir()
    (tmp_path / "open_clip" / "__init__.py").write_text("")
    code = ("from sam3_video import compat\n"
            "try:\n    compat.bpe_vocab_path()\n"
            "except compat.ConfigError as err:\n    print(err)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120)
    assert "pip install --no-deps open_clip_torch==3.3.0" in result.stdout, result.stderr
    assert issubclass(ConfigError, ValueError)


def test_ddp_step_and_release_under_torchrun(tmp_path):
    """2 gloo processes: strict DDP (find_unused_parameters=False) trains the tiny model
    (needs the semantic-seg loss and the unused-parameter freeze), global loss
    normalisation, identical parameters on both ranks, then release_process_group lets
    both processes exit (no gloo shutdown hang)."""
    from sam3_video.data import write_synthetic

    write_synthetic(tmp_path / "data", videos=2, frames=3, seed=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node=2",
         str(HERE / "ddp_step.py"), str(tmp_path / "data")],
        capture_output=True, text=True, env=env, timeout=240, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "rank 0: released" in result.stdout and "rank 1: released" in result.stdout
