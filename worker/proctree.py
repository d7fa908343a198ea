"""Every process a job started, remembered while it runs, so all of them can be stopped.

torchrun starts each rank in a new session, and a rank whose torchrun died is
re-parented to init: neither killing torchrun's process group nor walking its children
at the end finds them. So the supervisor calls `refresh()` every tick and keeps every
descendant it has ever seen (psutil.Process objects also guard against PID reuse).
"""
from __future__ import annotations

import logging
import signal
import subprocess
import time

import psutil

log = logging.getLogger(__name__)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
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
