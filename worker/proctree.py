"""Process trees: every process a job or a stack started, found and stopped, none left behind.

The worker's side, `ProcessTree`: torchrun starts each rank in a new session, and a rank
whose torchrun died is re-parented to init: neither killing torchrun's process group nor
walking its children at the end finds them. So the supervisor calls `refresh()` every
tick and keeps every descendant it has ever seen (psutil.Process objects also guard
against PID reuse).

The launcher's side (`sam3v up`, deploy/launcher.py), `Child` and the functions below:
children run in their own sessions so a Ctrl-C in the terminal reaches only the launcher,
which then stops them in the right order (worker first, so a running job checkpoints).
The launcher makes itself a child subreaper: processes that outlive their parent (the
trainer runs in a session of its own) are re-parented to the launcher instead of init, so a
final sweep of its descendants finds every one of them.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _alive(proc: psutil.Process) -> bool:
    """Running and not a zombie; False for a process that is gone or cannot be asked."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class ProcessTree:
    def __init__(self, root: subprocess.Popen):
        self.root = root
        self.known: dict[int, psutil.Process] = {}
        try:
            self.known[root.pid] = psutil.Process(root.pid)
        except psutil.NoSuchProcess:
            pass
        self.refresh()

    def refresh(self) -> None:
        """Record descendants of every live process we know (not just the root's)."""
        for proc in list(self.known.values()):
            if not _alive(proc):
                continue
            try:
                for child in proc.children(recursive=True):
                    self.known.setdefault(child.pid, child)
            except psutil.NoSuchProcess:
                pass

    def alive(self) -> list[psutil.Process]:
        self.root.poll()  # reap the root so it does not linger as a zombie
        return [p for p in self.known.values() if _alive(p)]

    def terminate(self, grace_s: float) -> list[int]:
        """SIGTERM the trainer (torchrun forwards it to the ranks, which checkpoint),
        wait up to grace_s, then SIGKILL every recorded process still alive.
        Returns the PIDs that survived even that (empty when all is well)."""
        self.refresh()
        if self.root.poll() is None:
            self.root.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and self.alive():
            self.refresh()
            time.sleep(0.2)
        return self.kill()

    def kill(self) -> list[int]:
        """SIGKILL every recorded process that is still alive and wait for them to go."""
        self.refresh()
        survivors = self.alive()
        for proc in survivors:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and survivors:
            time.sleep(0.1)
            survivors = self.alive()
        if survivors:
            log.error("processes survived SIGKILL: %s", [p.pid for p in survivors])
        return [p.pid for p in survivors]


# ---------------------------------------------------------------- the launcher's children

def become_subreaper() -> bool:
    """Linux only; elsewhere the sweep still finds descendants whose parents are alive."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _sigterm_when_launcher_dies() -> None:
    """preexec_fn: if the launcher is killed outright (SIGKILL), each child still gets
    SIGTERM and shuts down gracefully (the worker checkpoints its job) instead of living on."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


@dataclass
class Child:
    name: str
    popen: subprocess.Popen
    log_path: Path
    known: dict[int, psutil.Process] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def remember_descendants(self) -> None:
        """Note the child's process tree while it is intact; after the child dies its
        orphans can no longer be traced back to it."""
        try:
            for proc in psutil.Process(self.pid).children(recursive=True):
                self.known.setdefault(proc.pid, proc)
        except psutil.NoSuchProcess:
            pass

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_child(name: str, argv: list[str], env: dict[str, str], log_path: Path,
                cwd: Path | None = None) -> Child:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(argv)}\n".encode())
        log.flush()
        popen = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True,
                                 preexec_fn=_sigterm_when_launcher_dies)
    return Child(name, popen, log_path)


def stop_child(child: Child, sig: int, grace_s: float) -> bool:
    """Send `sig` to the child itself, wait up to grace_s, then kill its whole process group.
    Returns True when it exited within the grace period."""
    child.remember_descendants()
    if child.alive():
        try:
            child.popen.send_signal(sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    while child.alive() and time.monotonic() < deadline:
        child.remember_descendants()
        time.sleep(0.2)
    in_time = not child.alive()
    if not in_time:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        child.popen.wait(timeout=10)
    return in_time


def reap_orphans(own_pids: set[int]) -> None:
    """Collect exited processes re-parented to us (subreaper), leaving our Popen children
    to subprocess, which waits for them itself."""
    try:
        children = psutil.Process().children()
    except psutil.Error:
        return
    for proc in children:
        if proc.pid in own_pids:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(proc.pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError):
            pass


def sweep(extra: list[psutil.Process], grace_s: float = 5.0) -> list[str]:
    """Terminate every remaining descendant of this process and every process in `extra`
    (still the same process: psutil checks the creation time). Returns what had to be killed."""
    survivors = {p.pid: p for p in extra if p.is_running()}
    try:
        for p in psutil.Process().children(recursive=True):
            survivors.setdefault(p.pid, p)
    except psutil.Error:
        pass
    survivors = {pid: p for pid, p in survivors.items() if _alive(p)}
    if not survivors:
        return []
    named = [f"{p.pid} ({_name(p)})" for p in survivors.values()]
    for p in survivors.values():
        _signal(p, signal.SIGTERM)
    _, alive = psutil.wait_procs(list(survivors.values()), timeout=grace_s)
    for p in alive:
        _signal(p, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)
    reap_orphans(set())
    return named


def _signal(p: psutil.Process, sig: int) -> None:
    try:
        p.send_signal(sig)
    except psutil.Error:
        pass


def _name(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline()[:3]) or p.name()
    except psutil.Error:
        return "?"
