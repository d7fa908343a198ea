"""The same store and API on a real PostgreSQL (Debian's packages): DATABASE_URL=postgresql://
works unchanged. Skips where initdb/pg_ctl or psycopg are missing."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient

import jobstore
from jobstore.tokens import create_token
from api.main import create_app
from tests.api.conftest import free_port, train_body

import psycopg  # noqa: F401,E402  (the postgres extra: deploy/setup.sh installs it)


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(os.listdir("/usr/lib/postgresql")) if os.path.isdir("/usr/lib/postgresql") else []
    candidate = f"/usr/lib/postgresql/{versions[-1]}/bin/{name}" if versions else ""
    return candidate if os.path.exists(candidate) else None


@pytest.fixture(scope="module")
def postgres_url():
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    assert initdb and pg_ctl, "PostgreSQL server binaries (initdb, pg_ctl) missing: run deploy/setup.sh"
    # PostgreSQL refuses to run as root: run it as the 'postgres' system user then, in a
    # directory of its own (pytest's tmp dirs are private to root).
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="sam3v-pg-"))
    data = root / "data"
    if as_user:
        shutil.chown(root, "postgres")
    port = free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "start",
                    "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"],
                   check=True, capture_output=True)
    yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


def test_store_and_api_on_postgres(postgres_url, settings):
    pg = settings.model_copy(update={"database_url": postgres_url})
    engine = jobstore.get_engine(pg)
    assert engine.dialect.name == "postgresql"
    with TestClient(create_app(pg)) as client:  # migrations run on start
        jobstore.migrate(pg)  # a second migrator is a no-op
        with engine.connect() as conn:  # the migration builds exactly the models' schema
            assert compare_metadata(MigrationContext.configure(conn), jobstore.Base.metadata) == []
        h = {"Authorization": f"Bearer {create_token(pg, 'pat')}"}
        results = []

        def post():
            results.append(client.post("/jobs", json=train_body(),
                                       headers={**h, "Idempotency-Key": "pg-race"}))
        threads = [threading.Thread(target=post) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.status_code for r in results) == [200] * 5 + [201]
        job_id = results[0].json()["id"]

        job = jobstore.claim_job(job_id, "w", 60, engine=engine)
        assert job.attempt == 1 and jobstore.claim_job(job_id, "w2", 60, engine=engine) is None
        jobstore.add_metrics(job_id, 1, [("loss", 1, 2.0, 1.0), ("loss", 1, 1.0, 2.0),
                                      ("loss", 2, float("inf"), 3.0)], engine=engine)
        jobstore.add_checkpoint(job_id, "step_0000002.pt", 2, 5_000_000_000, "f" * 64, "/x", engine=engine)
        assert not jobstore.add_checkpoint(job_id, "step_0000002.pt", 2, 5_000_000_000, "f" * 64, "/x", engine=engine)
        assert jobstore.finish_job(job_id, 1, "succeeded", None, None, engine=engine)

        detail = client.get(f"/jobs/{job_id}", headers=h).json()
        assert detail["state"] == "succeeded"
        assert detail["last_metrics"]["loss"]["step"] == 2 and detail["last_metrics"]["loss"]["value"] is None
        points = client.get(f"/jobs/{job_id}/metrics", headers=h).json()["series"][0]["points"]
        assert points[0]["value"] == 1.0
        ckpts = client.get(f"/jobs/{job_id}/checkpoints", headers=h).json()["checkpoints"]
        assert ckpts[0]["size_bytes"] == 5_000_000_000  # BIGINT
        events = client.get(f"/jobs/{job_id}/events", headers=h).text
        assert events.count("event: state") == 3
        assert client.delete(f"/jobs/{job_id}", headers=h).status_code == 204
