"""Start the training/evaluation program under torchrun, as an argument list (no shell).

The child runs in its own session (a Ctrl+C or a signal to the worker's process group
does not reach it; the worker decides when it stops) with a parent-death signal: if the
process that started it dies, torchrun gets SIGTERM, which it forwards to the ranks,
and the trainer writes a checkpoint and exits.

Rendezvous: `--standalone` makes torchrun bind its c10d store on port 0, so the kernel
picks a free port atomically. Concurrent jobs on one host therefore never clash (an
explicit --rdzv-endpoint would be ignored by torchrun under --standalone anyway).

Environment: the trainer runs code chosen by a user's job spec, so it gets an allowlisted
environment (`child_env`, `PASSED_TO_TRAINER`), never the worker's own: no database or
broker URL, no password, token or key reaches it.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

from sam3_video.run_layout import JOB_FILE, log_path

PROGRAMS = {"train": "sam3_video.train", "eval": "sam3_video.evaluate",
            "predict": "sam3_video.predict"}
_PR_SET_PDEATHSIG = 1


def torchrun_argv(kind: str, nproc: int, job_file: Path, run_dir: Path) -> list[str]:
    # `python -m torch.distributed.run` is torchrun, run by this very interpreter/venv.
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
            f"--nproc_per_node={nproc}", "-m", PROGRAMS[kind],
            "--config", str(job_file), "--run-dir", str(run_dir)]


def _die_with_parent(parent_pid: int):
    """preexec_fn: ask the kernel to SIGTERM us when the parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


# What of the worker's own environment a trainer inherits: named one by one, never by
# prefix, so nothing the worker holds for itself (SAM3V_DATABASE_URL, SAM3V_BROKER_URL,
# PGPASSWORD, cloud keys, API tokens...) reaches code that runs a user's job spec.
PASSED_TO_TRAINER = (
    # the process basics
    "PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "LANG", "LANGUAGE", "LC_ALL",
    "LC_CTYPE", "LC_NUMERIC", "LD_LIBRARY_PATH", "PYTHONPATH",
    # CPU threads
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    # CUDA (CUDA_VISIBLE_DEVICES is set from the worker's GPU set, below)
    "CUDA_HOME", "CUDA_DEVICE_ORDER", "CUDA_LAUNCH_BLOCKING", "CUDA_MODULE_LOADING",
    "PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_NVML_BASED_CUDA_CHECK",
    # torch and torchrun
    "TORCH_HOME", "TORCH_DISTRIBUTED_DEBUG", "TORCH_CPP_LOG_LEVEL", "TORCH_SHOW_CPP_STACKTRACES",
    "TORCH_NCCL_ASYNC_ERROR_HANDLING", "TORCH_NCCL_BLOCKING_WAIT", "TORCH_NCCL_TRACE_BUFFER_SIZE",
    "TORCH_NCCL_DUMP_ON_TIMEOUT", "LOGLEVEL", "GLOO_SOCKET_IFNAME",
    # NCCL (multi-GPU jobs)
    "NCCL_DEBUG", "NCCL_DEBUG_SUBSYS", "NCCL_SOCKET_IFNAME", "NCCL_IB_DISABLE",
    "NCCL_P2P_DISABLE", "NCCL_P2P_LEVEL", "NCCL_SHM_DISABLE", "NCCL_NET_GDR_LEVEL",
    "NCCL_ALGO", "NCCL_PROTO", "NCCL_TIMEOUT",
)
# A belt to the allowlist's braces: a name holding one of these is never passed, even if
# someone adds it to PASSED_TO_TRAINER by mistake.
SECRET_MARKERS = ("URL", "PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIAL", "KEY")


def child_env(data_root: Path, runs_root: Path, cuda_devices: list[int],
              environ: dict[str, str] | None = None) -> dict[str, str]:
    """The trainer's whole environment: the allowlisted names of the worker's environment
    (`environ`, default os.environ) that are set, plus DATA_ROOT, RUNS_ROOT,
    CUDA_VISIBLE_DEVICES and PYTHONUNBUFFERED. torchrun adds its own (RANK, MASTER_ADDR...)."""
    source = os.environ if environ is None else environ
    env = {name: source[name] for name in PASSED_TO_TRAINER
           if name in source and not any(m in name.upper() for m in SECRET_MARKERS)}
    env.setdefault("PATH", os.defpath)
    env.update(DATA_ROOT=str(data_root), RUNS_ROOT=str(runs_root), PYTHONUNBUFFERED="1",
               # "" hides every GPU from a CPU job: two jobs never share a device.
               CUDA_VISIBLE_DEVICES=",".join(str(d) for d in cuda_devices))
    return env


def start(kind: str, nproc: int, run_dir: Path, attempt: int, env: dict[str, str]) -> subprocess.Popen:
    """Start torchrun for RUN_DIR/job.json; stdout+stderr go to RUN_DIR/logs/attempt-N.log."""
    path = log_path(run_dir, attempt)
    path.parent.mkdir(parents=True, exist_ok=True)
    argv = torchrun_argv(kind, nproc, run_dir / JOB_FILE, run_dir)
    with open(path, "ab") as logfile:
        logfile.write(f"$ {' '.join(argv)}\n".encode())
        logfile.flush()
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logfile,
                                stderr=subprocess.STDOUT, env=env, cwd=run_dir,
                                start_new_session=True, close_fds=True,
                                preexec_fn=_die_with_parent(os.getpid()))
