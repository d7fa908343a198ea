"""Fixtures for the API tests: a real redis-server, a real SQLite file, the real app."""
from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import jobstore
from jobstore.tokens import create_token
from api.main import create_app
from jobstore.settings import Settings
from sam3_video.data import write_synthetic
from tests.support.procs import free_port  # noqa: F401  (api tests import it from here)


@pytest.fixture(scope="session")
def redis_url(redis_server) -> str:
    """The session's one real redis-server (tests/conftest.py)."""
    return redis_server.url


def write_dataset(root: Path, name: str) -> Path:
    """A small valid dataset: POST /jobs runs the real validator on it before queueing."""
    path = root / name
    write_synthetic(path, videos=2, frames=3, seed=len(name))
    return path


@pytest.fixture
def settings(tmp_path, redis_url) -> Settings:
    data = tmp_path / "data"
    write_dataset(data, "synthetic")
    write_dataset(data, "synthetic-val")
    return Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'sam3v.db'}",
                    data_root=data, runs_root=tmp_path / "runs", broker_url=redis_url,
                    gpu_counts=[0, 2], max_body_bytes=64 * 1024, sse_poll_seconds=0.05,
                    sse_keepalive_seconds=0.5)


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def client(app):
    with TestClient(app) as c:  # runs the lifespan: migrations
        yield c


@pytest.fixture
def engine(client, settings):
    return jobstore.get_engine(settings)


@pytest.fixture
def tokens(client, settings) -> dict[str, str]:
    return {name: create_token(settings, name, name == "root") for name in ("alice", "bob", "root")}


@pytest.fixture
def auth(tokens):
    return {name: {"Authorization": f"Bearer {tok}"} for name, tok in tokens.items()}


def train_body(**overrides) -> dict:
    config = {"data": {"train": "synthetic", "val": "synthetic-val"}, "max_steps": 20,
              "gpus": 0, "checkpoint_every": 5}
    body = {"kind": "train", "name": "t1", "config": config}
    body.update(overrides)
    return body


@pytest.fixture
def make_job(client, auth):
    def _make(user="alice", **overrides):
        r = client.post("/jobs", json=train_body(**overrides), headers=auth[user])
        assert r.status_code == 201, r.text
        return r.json()
    return _make
