"""A real SLURM cluster (tests/slurm/cluster.py) for the session, and the service in front
of it: the worker tests' Stack (real Redis, SQLite, API and Celery worker processes) with
a worker that submits to the cluster (SAM3V_LAUNCHER=slurm)."""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.slurm.cluster import NODES, PARTITION, Cluster, slurm_installed
from tests.support.procs import wait_until
from tests.worker.conftest import data_root, stack  # noqa: F401  (the shared fixtures)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    if not slurm_installed():
        pytest.skip("slurm-wlm and munge are not installed (deploy/setup.sh installs them)")
    if os.geteuid() != 0:
        pytest.skip("the test cluster needs root: network namespaces and slurmd")
    cluster = Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except BaseException:
        print(cluster.logs())
        cluster.close()
        raise
    yield cluster
    cluster.close()


@pytest.fixture
def slurm_stack(stack, slurm_cluster):
    """The service with one SLURM worker serving the multi-node CPU queue; the API accepts
    multi-node jobs (SAM3V_SLURM_GPU_COUNTS=0). Every node must be idle again before
    and after a test, so tests never share the cluster's state."""
    assert slurm_cluster.nodes_idle(), slurm_cluster.node_states()
    stack.env["SAM3V_SLURM_GPU_COUNTS"] = "0"
    # Room for a step and a checkpoint on a busy 2-core host; the cluster's KillWait (5 s)
    # bounds what comes after the grace period.
    stack.env["SAM3V_CANCEL_GRACE_S"] = "20"
    stack.start_worker("slurm-w1", queue="slurm-cpu", SAM3V_LAUNCHER="slurm",
                       SAM3V_SLURM_POLL_S="1", SLURM_CONF=str(slurm_cluster.conf))
    stack.start_api()
    stack.cluster = slurm_cluster
    yield stack
    if os.environ.get("SAM3V_KEEP_TEST_LOGS"):
        print(slurm_cluster.logs())
    # Leave the cluster as found: no job of this test, every node up and idle.
    subprocess.run(["scancel", f"--partition={PARTITION}"], env=slurm_cluster.env, check=False)
    for node in NODES:
        if node not in slurm_cluster.slurmd:
            slurm_cluster.start_slurmd(node)
    wait_until(slurm_cluster.nodes_idle, 90, "both nodes idle after the test")


# The API tests' in-process app over real Redis and SQLite, for the routing checks.
from tests.api.conftest import app, client, redis_url, settings, tokens  # noqa: E402,F401
