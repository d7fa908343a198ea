"""Where a trainer runs: the one interface the supervisor talks to, one room per place.

    base   the interface: a `Launcher` starts an attempt and hands back a `Launch` (poll,
           wait, terminate gracefully, kill, log path, facts shown in GET /jobs/{id}, and
           whether the cluster rather than the trainer ended it)
    local  torchrun --standalone on this host, followed as a process tree (the default)
    slurm  sbatch to a SLURM cluster: srun torchrun across the allocated nodes, followed
           with scontrol (sacct once the controller forgot the job)

The worker setting SAM3V_LAUNCHER picks one (`launcher_for`).
"""
from __future__ import annotations

from jobstore.settings import Settings
from worker.launchers.base import Interruption, Launch, Launcher
from worker.launchers.local import LocalLauncher
from worker.launchers.slurm import SlurmLauncher

LAUNCHERS: dict[str, type] = {"local": LocalLauncher, "slurm": SlurmLauncher}

__all__ = ["Interruption", "Launch", "Launcher", "LAUNCHERS", "launcher_for"]


def launcher_for(settings: Settings) -> Launcher:
    try:
        return LAUNCHERS[settings.launcher](settings)
    except KeyError:
        raise ValueError(f"SAM3V_LAUNCHER: expected one of {sorted(LAUNCHERS)}, "
                         f"got {settings.launcher!r}") from None
