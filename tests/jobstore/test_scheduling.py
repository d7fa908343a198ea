"""Row 8 in the job store: leases are set and judged on the database's clock.

The skew test runs the real transitions and the real reaper in processes whose clocks
are skewed by libfaketime (LD_PRELOAD), against a real PostgreSQL server: the one setup
where hosts with different clocks share a database. (SQLite lives on one host: its
clock is the database's.)"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

import jobstore
from jobstore.settings import Settings
from tests.jobstore.test_postgres import postgres_url  # noqa: F401  (pytest fixture)
from tests.support.procs import REPO

LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))), None)
SKEW_S = 61  # more than a default lease (60 s)
LEASE_S = 30


def _fresh_postgres_db(server_url: str) -> str:
    import psycopg
    name = f"clock_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + "/" + name


def _queued_job(engine) -> int:
    with jobstore.session_scope(engine) as s:
        user = jobstore.User(name=f"u-{uuid.uuid4().hex[:6]}", is_admin=False, created_at=time.time())
        s.add(user)
        s.flush()
        job = jobstore.create_job(s, owner_id=user.id, kind="train", name=None,
                                  config={"max_steps": 10}, gpus=0, queue="cpu", priority=0,
                                  max_attempts=3)
        return job.id


def on_host_with_clock(offset_s: int, settings: Settings, code: str) -> dict:
    """Run `code` (which sets `result`) in a process whose clock is `offset_s` off, as on
    another host; returns `result` and that process's time.time() minus ours."""
    env = {**os.environ, "LD_PRELOAD": LIBFAKETIME, "FAKETIME": f"{offset_s:+d}",
           "FAKETIME_DONT_FAKE_MONOTONIC": "1", "SAM3V_DATABASE_URL": settings.database_url,
           "SAM3V_BROKER_URL": settings.broker_url, "SAM3V_LEASE_SECONDS": str(LEASE_S)}
    script = ("import json, time\n"
              "import jobstore\n"
              "from jobstore.settings import get_settings\n"
              "settings = get_settings()\n"
              f"{code}\n"
              "print(json.dumps({'result': result, 'clock': time.time()}))\n")
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["skew"] = out["clock"] - time.time()  # its clock read as it finished, less ours now
    return out


@pytest.mark.skipif(LIBFAKETIME is None, reason="libfaketime not installed (deploy/setup.sh)")
def test_row8_skewed_host_clocks_never_requeue_a_healthy_job(postgres_url, redis_url):
    settings = Settings(database_url=_fresh_postgres_db(postgres_url), broker_url=redis_url,
                        lease_seconds=LEASE_S)
    engine = jobstore.create_db_engine(settings.database_url)
    jobstore.migrate(settings, engine=engine)
    job_id = _queued_job(engine)

    # A worker on a host 61 s behind claims the job and renews its lease...
    behind = on_host_with_clock(-SKEW_S, settings, (
        f"job = jobstore.claim_job({job_id}, 'lagging-host', {LEASE_S})\n"
        f"result = [job.attempt, jobstore.renew_lease({job_id}, 1, {LEASE_S})]"))
    assert abs(behind["skew"] + SKEW_S) < 5, "libfaketime did not skew the clock"
    assert behind["result"] == [1, "running"]
    lease_left = jobstore.get_job(job_id, engine=engine).lease_until - time.time()
    assert LEASE_S - 10 < lease_left <= LEASE_S + 1, lease_left  # the database's clock

    # ...and the reaper of a host 61 s ahead leaves it alone.
    ahead = on_host_with_clock(+SKEW_S, settings, (
        "from worker import reaper\n"
        "result = reaper.reap_once()"))  # its settings: the SAM3V_ environment
    assert abs(ahead["skew"] - SKEW_S) < 5, "libfaketime did not skew the clock"
    assert ahead["result"]["requeued"] == 0 and ahead["result"]["failed"] == 0, ahead
    job = jobstore.get_job(job_id, engine=engine)
    assert job.state == "running" and job.attempt == 1 and job.worker_id == "lagging-host"

    # A lease that really ran out (by the database's clock) is still reaped by that host.
    assert jobstore.renew_lease(job_id, 1, -5, engine=engine) == "running"
    ahead = on_host_with_clock(+SKEW_S, settings, (
        "from worker import reaper\n"
        "result = reaper.reap_once()"))  # its settings: the SAM3V_ environment
    assert ahead["result"]["requeued"] == 1, ahead
    assert jobstore.get_job(job_id, engine=engine).state == "queued"
    engine.dispose()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_row8_lease_transitions_use_the_database_clock(dialect, tmp_path, request):
    url = (f"sqlite:///{tmp_path / 'lease.db'}" if dialect == "sqlite"
           else _fresh_postgres_db(request.getfixturevalue("postgres_url")))
    engine = jobstore.create_db_engine(url)
    jobstore.migrate(Settings(database_url=url), engine=engine)
    job_id = _queued_job(engine)
    job = jobstore.claim_job(job_id, "w", LEASE_S, engine=engine)
    assert abs(job.lease_until - (time.time() + LEASE_S)) < 5
    assert jobstore.expired_leases(engine=engine) == []
    assert jobstore.renew_lease(job_id, 1, -1, engine=engine) == "running"
    assert [j.id for j in jobstore.expired_leases(engine=engine)] == [job_id]
    assert jobstore.renew_lease(job_id, 1, LEASE_S, engine=engine) == "running"
    assert jobstore.expired_leases(engine=engine) == []
    assert [j.id for j in jobstore.expired_leases(float("inf"), engine=engine)] == [job_id]
    engine.dispose()
