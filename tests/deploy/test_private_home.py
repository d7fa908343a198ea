"""Row 9, the local stack's files: `sam3v up` keeps its home private to the user: folders
0700, files 0600 (database, logs, token, Redis data, datasets, run directories), and every
process it starts (Redis, API, worker, trainer) runs with umask 077."""
from __future__ import annotations

import os
import signal
import stat
import time

import psutil

from tests.deploy.test_launcher import tiny_train_config


def umask_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        return None  # it exited meanwhile
    return None


def too_open(root) -> list[str]:
    """Every folder not 0700 and file not 0600 under `root` (root included)."""
    found = []
    for folder, dirs, files in os.walk(root):
        for name in [None, *files]:
            path = folder if name is None else os.path.join(folder, name)
            try:
                mode = stat.S_IMODE(os.lstat(path).st_mode)
            except FileNotFoundError:
                continue
            want = 0o700 if name is None else 0o600
            if mode != want:
                found.append(f"{path}: {oct(mode)}")
    return found


def test_row9_local_home_is_private(make_stack, stack_home):
    # A home an older version left readable to everyone.
    (stack_home / "logs").mkdir(parents=True)
    old_log = stack_home / "logs" / "api.log"
    old_log.write_text("an old log line\n")
    for path, mode in ((stack_home, 0o755), (stack_home / "logs", 0o755), (old_log, 0o644)):
        path.chmod(mode)

    stack = make_stack()
    stack.start()
    try:
        with stack.client() as client:
            job_id = client.post("/jobs", json={"kind": "train", "config": tiny_train_config(50)}).json()["id"]
            run_dir = stack.layout.runs / f"job-{job_id}"
            deadline = time.monotonic() + 120
            trainers = []
            while time.monotonic() < deadline and not trainers:
                stack.remember()
                trainers = [p for p in stack.seen.values()
                            if p.is_running() and str(run_dir) in " ".join(_cmdline(p))]
                time.sleep(0.5)
            assert trainers, "the job's trainer never started"
            assert (run_dir / "job.json").is_file() and (run_dir / "logs" / "attempt-1.log").is_file()
            stack.remember()
            masks = {p.pid: (umask_of(p.pid), " ".join(_cmdline(p))[:80]) for p in stack.seen.values()}
            masks[stack.proc.pid] = (umask_of(stack.proc.pid), "sam3v up")
            assert {m for m, _ in masks.values() if m is not None} == {0o077}, masks
            names = " ".join(cmd for _, cmd in masks.values())
            for part in ("redis-server", "-m api", "celery", "torch.distributed.run"):
                assert part in names, (part, names)
            assert too_open(stack.layout.root) == []
            client.post(f"/jobs/{job_id}/cancel").raise_for_status()
    finally:
        assert stack.stop(signal.SIGINT) == 0
    assert stack.leftovers() == []
    assert too_open(stack.layout.root) == []
    assert old_log.read_text().startswith("an old log line")  # tightened, not replaced


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []
