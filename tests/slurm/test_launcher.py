"""How the SLURM launcher reads the controller: a controller it cannot reach is no news
(the job may well be running: ask again), a job the controller does not know any more is
an attempt lost to the cluster (resumed as the next attempt)."""
from __future__ import annotations

from worker.launchers.slurm import SlurmLaunch

DEAD_CONTROLLER = """\
ClusterName=unreachable
SlurmctldHost=nowhere(127.0.0.1)
SlurmctldPort=1
AuthType=auth/none
MessageTimeout=1
NodeName=n1 CPUs=1
PartitionName=p Nodes=n1
"""


def test_an_unreachable_controller_is_not_a_lost_job(tmp_path, monkeypatch):
    conf = tmp_path / "slurm.conf"
    conf.write_text(DEAD_CONTROLLER)
    monkeypatch.setenv("SLURM_CONF", str(conf))
    launched = SlurmLaunch("42", tmp_path / "job-1", 1, poll_s=0.01)
    launched.update()
    assert launched.exit_code is None and launched.interruption() is None
    assert launched.state == "PENDING"  # unchanged: nothing was learnt


def test_a_job_the_controller_forgot_is_an_interrupted_attempt(slurm_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    launched = SlurmLaunch("987654", tmp_path / "job-1", 1, poll_s=0.01)
    assert launched.poll() is not None
    assert launched.interruption().kind == "node_failure"
    assert "unknown to the controller" in launched.interruption().message
