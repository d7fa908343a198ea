"""The worker's parts on their own, with real files, processes and a real torchrun."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from jobstore.settings import Settings
from sam3_video.config import ConfigError
from sam3_video.run_layout import job_dir
from tests.worker.conftest import wait_until
from worker.ingest import CheckpointScanner, MetricsTail, StepRate, metric_rows
from worker.proctree import ProcessTree
from worker.tasks import classify, last_lines, log_tail, resolved_config, trainer_exit_code


def test_metrics_tail_keeps_a_partial_line_for_later(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    assert tail.read_new() == []  # no file yet
    with open(path, "w") as f:
        f.write('{"step": 1, "time": 1.0, "loss": 2.5, "phase": "x"}\n{"step": 2, "ti')
    assert [r["step"] for r in tail.read_new()] == [1]
    with open(path, "a") as f:
        f.write('me": 2.0, "loss": 2.0}\nnot json\n')
    assert [r["step"] for r in tail.read_new()] == [2]  # the bad line is skipped
    assert tail.read_new() == []
    assert metric_rows({"step": 1, "time": 1.0, "loss": 2.5, "phase": "base", "ok": True}) == \
        [("loss", 1, 2.5, 1.0)]


def test_checkpoint_scanner_registers_complete_files_once(tmp_path):
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    (ckpt / "step_0000002.pt").write_bytes(b"a" * 10)
    (ckpt / "step_0000004.pt.tmp").write_bytes(b"half")
    (ckpt / "notes.txt").write_text("x")
    scanner = CheckpointScanner(ckpt)
    [found] = scanner.new_files()
    assert (found.name, found.step, found.size_bytes) == ("step_0000002.pt", 2, 10)
    assert found.sha256 == "bf2cb58a68f684d95a3b78ef8f661c9a4e5b09e82cc8f9cc88cce90528caeb27"
    (ckpt / "step_0000004.pt.tmp").rename(ckpt / "step_0000004.pt")
    assert [c.step for c in scanner.new_files()] == [4]
    assert scanner.new_files() == []


def test_step_rate_gives_an_eta_and_restarts_on_resume():
    rate = StepRate()
    for step in range(1, 6):
        rate.add(step, 100.0 + 2 * step)
    assert rate.eta_seconds(15) == 20.0  # 10 steps left at 2 s each
    rate.add(3, 200.0)  # resumed from an earlier checkpoint
    assert rate.eta_seconds(15) is None


def test_job_file_config_resolves_paths_on_the_workers_host(tmp_path):
    """The stored spec names a previous job; job.json gets that job's latest checkpoint
    and absolute dataset paths, through the same resolver the API validates with."""
    settings = Settings(home=tmp_path, data_root=tmp_path / "data", runs_root=tmp_path / "runs")
    (settings.data_root / "synthetic-val").mkdir(parents=True)
    ckpts = job_dir(settings.runs_root, 3) / "checkpoints"
    ckpts.mkdir(parents=True)
    for step in (5, 10):
        (ckpts / f"step_{step:07d}.pt").write_bytes(b"w")
    (ckpts / "step_0000015.pt.tmp").write_bytes(b"partial")
    stored = {"data": {"dataset": "synthetic-val"}, "gpus": 0, "model": {"init": {"job_id": 3}}}
    config = resolved_config("eval", stored, settings)
    assert config.model.init.path == str(ckpts / "step_0000010.pt")
    assert config.model.init.job_id == 3
    assert config.data.dataset == str(settings.data_root / "synthetic-val")
    with pytest.raises(ConfigError, match="job 4 has no checkpoint yet"):
        resolved_config("eval", {**stored, "model": {"init": {"job_id": 4}}}, settings)
    # A user-written path resolves under DATA_ROOT only, never into RUNS_ROOT.
    by_path = {**stored, "model": {"init": {"path": str(ckpts / "step_0000010.pt")}}}
    with pytest.raises(ConfigError, match="outside DATA_ROOT"):
        resolved_config("eval", by_path, settings)


def test_process_tree_kills_descendants_in_other_sessions(tmp_path):
    # root -> child in a NEW session (as torchrun starts ranks); the root then exits, so
    # only what was recorded while it lived can find the child.
    script = textwrap.dedent("""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                         start_new_session=True)
        time.sleep(120)
    """)
    root = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    tree = ProcessTree(root)
    wait_until(lambda: (tree.refresh(), len(tree.known) == 2)[1], 30, "the grandchild")
    [child] = [p for pid, p in tree.known.items() if pid != root.pid]
    root.kill()
    root.wait()
    assert child.is_running()
    started = time.monotonic()
    assert tree.terminate(grace_s=1.0) == []
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert time.monotonic() - started < 10


def test_failure_classified_from_a_real_torchrun_log(tmp_path):
    # torchrun exits 1 whatever the rank returned; the rank's code is in its report.
    program = tmp_path / "bad_config.py"
    program.write_text("import sys\nprint('configuration error:\\n  data.train: missing', "
                       "file=sys.stderr)\nsys.exit(2)\n")
    log = tmp_path / "attempt-1.log"
    with open(log, "wb") as out:
        code = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                               "--nproc_per_node=1", str(program)],
                              stdout=out, stderr=subprocess.STDOUT).returncode
    assert code == 1
    tail = log_tail(log)
    assert trainer_exit_code(code, tail) == 2
    assert classify(2, tail) == "config"
    reason = last_lines(tail)
    assert "data.train: missing" in reason and "ChildFailedError" not in reason
    assert classify(1, "RuntimeError: CUDA out of memory. Tried to allocate") == "oom"
    assert classify(-9, "") == "infrastructure"
    assert json.dumps(reason)  # stored as text


def test_worker_modules_never_import_torch():
    # Celery forks its pool: CUDA initialised in the parent would break every child.
    code = ("import sys, worker.celery_app, worker.tasks, worker.reaper, worker.__main__; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "SAM3V_WORKER_GPUS": "0,1"})
    assert out.stdout.strip() == "[]"


def test_python_m_worker_serves_the_queue_of_its_gpu_set(stack):
    proc = subprocess.Popen([sys.executable, "-m", "worker"], cwd=stack.root,
                            env={**stack.env, "SAM3V_WORKER_GPUS": "0,1", "SAM3V_WORKER_ID": "m"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "ready." in line:
                break
        banner = "".join(lines)
        assert ".> gpu2 " in banner and "concurrency: 1 (prefork)" in banner, banner
    finally:
        proc.kill()
        proc.wait()
