"""A real small filesystem for disk-full tests: tmpfs mounted on a test's directory (root
only; `mount -t tmpfs -o size=...`), unmounted in teardown."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


class Tmpfs:
    def __init__(self):
        self.mounted: list[Path] = []

    def mount(self, directory: Path, size: str = "1m") -> Path:
        """Mount a `size` tmpfs on `directory` (created if missing); skip if not allowed."""
        directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root (disk-full tests use a real full filesystem)")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                               str(directory)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        self.mounted.append(directory)
        return directory

    def unmount_all(self) -> None:
        for directory in reversed(self.mounted):
            # Lazy: a process that still holds a file there must not keep the mount alive.
            subprocess.run(["umount", "-l", str(directory)], capture_output=True)
        self.mounted.clear()


@pytest.fixture
def tmpfs():
    mounts = Tmpfs()
    yield mounts
    mounts.unmount_all()
