"""The API as its own process: `uvicorn api.main:app` on a free port, configured only by
environment variables (the store, roots and broker of a test's Settings, plus extras)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from jobstore.settings import Settings
from tests.support.procs import REPO, free_port, kill_tree, wait_until


def server_env(settings: Settings, **extra: str) -> dict[str, str]:
    """This process's environment less its SAM3V_ variables, plus the database, DATA_ROOT,
    RUNS_ROOT and broker of `settings`, plus `extra` (e.g. SAM3V_GPU_COUNTS="0")."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAM3V_")}
    env.update(SAM3V_DATABASE_URL=settings.database_url, DATA_ROOT=str(settings.data_root),
               RUNS_ROOT=str(settings.runs_root), SAM3V_BROKER_URL=settings.broker_url)
    env.update(extra)
    return env


def _answers_healthz(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def uvicorn_app(settings: Settings, **extra_env: str) -> Iterator[str]:
    """Serve the app with uvicorn for the block; yields its base URL. The server's stderr
    goes to a file (a pipe nobody reads could fill and stall it); once the server has
    stopped, a traceback in it fails the test."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port),
             "--log-level", "warning"],
            env=server_env(settings, **extra_env), cwd=REPO, stderr=log, text=True)
        try:
            wait_until(lambda: server.poll() is not None or _answers_healthz(base), 60,
                       "uvicorn to answer /healthz", interval=0.05)
            if server.poll() is not None:
                log.seek(0)
                raise AssertionError(f"uvicorn exited with {server.returncode}:\n{log.read()}")
            yield base
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                kill_tree(server)
        log.seek(0)
        errors = log.read()
    assert "Traceback" not in errors, errors
