"""Jobs across two nodes of a real SLURM cluster (slurmctld + two slurmd, each node its own
network namespace and hostname), submitted over HTTP to the real API and run by a Celery
worker with SAM3V_LAUNCHER=slurm: a 2-node training succeeds with identical replicas;
cancel leaves nothing running on either node; a node that dies mid-run costs an attempt,
and the next one resumes from the checkpoint and succeeds."""
from __future__ import annotations

import re
import subprocess
import time

import pytest

from tests.slurm.cluster import NODES
from tests.worker.conftest import kill_tree, tiny_train, wait_until

FINISHED = ("succeeded", "failed", "cancelled")


def poll(client, job_id: int, done, timeout: float, what: str) -> dict:
    def check():
        body = client.get(f"/jobs/{job_id}").json()
        return body if done(body) else None
    return wait_until(check, timeout, what, interval=0.5)


def slurm_job(stack, slurm_id: str) -> str:
    """`scontrol show job` of the cluster's job, for the failure message and the record."""
    return subprocess.run(["scontrol", "show", "job", slurm_id], env=stack.cluster.env,
                          capture_output=True, text=True).stdout


def squeue_all(stack) -> str:
    return subprocess.run(["squeue", "-t", "all", "-o", "%i %j %T %D %N %r"],
                          env=stack.cluster.env, capture_output=True, text=True).stdout


@pytest.mark.slow
def test_two_node_training_succeeds_with_identical_replicas(slurm_stack):
    stack = slurm_stack
    with stack.http() as client:
        created = client.post("/jobs", json={"kind": "train", "config": tiny_train(nodes=2)})
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        assert created.json()["queue"] == "slurm-cpu"
        job = poll(client, job_id, lambda b: b["state"] in FINISHED, 300, "the 2-node job to finish")
        log = (stack.run_dir(job_id) / "logs" / "attempt-1.log").read_text(errors="replace")
        assert job["state"] == "succeeded", (job, log[-4000:], stack.cluster.logs())

        (attempt,) = job["attempts"]
        slurm = attempt["slurm"]
        assert slurm["nodes"] == list(NODES) and slurm["state"] == "COMPLETED", slurm
        record = slurm_job(stack, slurm["job_id"])
        print(f"\n$ squeue -t all\n{squeue_all(stack)}\n$ scontrol show job {slurm['job_id']}\n{record}")
        assert "JobState=COMPLETED" in record and "NumNodes=2" in record, record
        assert re.search(r"^\s*NodeList=node\[1-2\]", record, re.M), record

        # one rank per node, and DDP kept their parameters identical
        sums = dict(re.findall(r"rank (\d) parameter checksum ([-+0-9.eE]+)", log))
        assert set(sums) == {"0", "1"}, log[-3000:]
        assert sums["0"] == sums["1"]
        assert f"SLURM job {slurm['job_id']} on node[1-2], rendezvous node1:" in log

        series = {s["name"]: s for s in client.get(f"/jobs/{job_id}/metrics").json()["series"]}
        assert [p["step"] for p in series["loss"]["points"]] == list(range(1, 7))
        print("loss by step:", {p["step"]: round(p["value"], 4) for p in series["loss"]["points"]})
        listed = client.get(f"/jobs/{job_id}/checkpoints").json()["checkpoints"]
        assert {c["name"] for c in listed if c["available"]} == {"step_0000004.pt", "step_0000006.pt"}
        script = stack.run_dir(job_id) / "slurm" / "job-1.sbatch"
        assert "#SBATCH --nodes=2" in script.read_text()  # kept for people to read
    assert wait_until(stack.cluster.nodes_idle, 60, "both nodes idle again")


@pytest.mark.slow
def test_cancel_leaves_no_trainer_on_either_node(slurm_stack):
    stack = slurm_stack
    grace = float(stack.env["SAM3V_CANCEL_GRACE_S"])
    with stack.http() as client:
        config = tiny_train(nodes=2, max_steps=500, checkpoint_every=2, keep_last=2)
        job_id = client.post("/jobs", json={"kind": "train", "config": config}).json()["id"]
        marker = str(stack.run_dir(job_id))
        poll(client, job_id, lambda b: b["progress"]["step"] >= 3, 240, "training to start")
        for node in NODES:  # the trainer really runs on both nodes
            assert stack.cluster.trainer_processes(node, marker), node
        asked = time.monotonic()
        assert client.post(f"/jobs/{job_id}/cancel").status_code in (200, 202)
        job = poll(client, job_id, lambda b: b["state"] in FINISHED, grace + 30, "the cancel")
        took = time.monotonic() - asked
        print(f"\ncancel -> cancelled in {took:.1f} s (grace {grace:.0f} s)")
        assert job["state"] == "cancelled", job
        left = {node: stack.cluster.trainer_processes(node, marker) for node in NODES}
        assert not any(left.values()), left
        # within the grace period, lease renewal (when the worker notices) included
        assert took < grace + 5, took
        slurm = job["attempts"][0]["slurm"]
        assert slurm["nodes"] == list(NODES)
        log = (stack.run_dir(job_id) / "logs" / "attempt-1.log").read_text(errors="replace")
        # SIGTERM reached the ranks, which checkpointed before they exited
        assert log.count("stopped by SIGTERM at step") == 2, log[-3000:]
    assert wait_until(stack.cluster.nodes_idle, 60, "both nodes idle again")


@pytest.mark.slow
def test_a_failed_node_costs_an_attempt_and_the_job_resumes(slurm_stack):
    stack = slurm_stack
    with stack.http() as client:
        config = tiny_train(nodes=2, max_steps=14, checkpoint_every=2, keep_last=10)
        job_id = client.post("/jobs", json={"kind": "train", "config": config}).json()["id"]
        poll(client, job_id, lambda b: b["progress"]["step"] >= 5, 240, "training past step 4")
        stack.cluster.fail_node("node2")  # slurmd, slurmstepd and the trainer die at once
        poll(client, job_id, lambda b: b["attempt"] >= 2, 120, "the failure to cost attempt 1")
        stack.cluster.start_slurmd("node2")  # the node comes back
        job = poll(client, job_id, lambda b: b["state"] in FINISHED, 400, "the resumed job to finish")
        log2 = (stack.run_dir(job_id) / "logs" / "attempt-2.log").read_text(errors="replace")
        assert job["state"] == "succeeded", (job, log2[-4000:], stack.cluster.logs())
        first, second = job["attempts"]
        print(f"\nattempt 1: {first['reason']} {first['slurm']}\nattempt 2: {second['slurm']}")
        assert first["outcome"] == "requeued", first
        assert second["outcome"] == "succeeded", second
        assert first["slurm"]["job_id"] != second["slurm"]["job_id"]
        assert second["slurm"]["nodes"] == list(NODES)
        resumed = re.search(r"resumed from \S*step_(\d{7})\.pt at step (\d+)", log2)
        assert resumed and int(resumed.group(2)) >= 4, log2[-3000:]
        series = {s["name"]: s for s in client.get(f"/jobs/{job_id}/metrics").json()["series"]}
        assert [p["step"] for p in series["loss"]["points"]] == list(range(1, 15))
        sums = dict(re.findall(r"rank (\d) parameter checksum ([-+0-9.eE]+)", log2))
        assert set(sums) == {"0", "1"} and sums["0"] == sums["1"], log2[-3000:]
    assert wait_until(stack.cluster.nodes_idle, 60, "both nodes idle again")


@pytest.mark.slow
def test_a_killed_worker_s_slurm_job_is_cancelled_before_the_next_attempt(slurm_stack):
    """The worker dies (SIGKILL) while its SLURM job runs on: the job's lease runs out,
    another SLURM worker takes the next attempt, cancels the orphaned SLURM job first (two
    attempts never write one run directory), and resumes from the checkpoint."""
    stack = slurm_stack
    with stack.http() as client:
        config = tiny_train(nodes=2, max_steps=14, checkpoint_every=2, keep_last=10)
        job_id = client.post("/jobs", json={"kind": "train", "config": config}).json()["id"]
        poll(client, job_id, lambda b: b["progress"]["step"] >= 3, 240, "training to start")
        orphan = client.get(f"/jobs/{job_id}").json()["attempts"][0]["slurm"]["job_id"]
        kill_tree(stack.workers[0])
        assert "JobState=RUNNING" in slurm_job(stack, orphan)  # the cluster runs on alone
        stack.start_worker("slurm-w2", queue="slurm-cpu", SAM3V_LAUNCHER="slurm",
                           SAM3V_SLURM_POLL_S="1", SLURM_CONF=str(stack.cluster.conf))
        job = poll(client, job_id, lambda b: b["state"] in FINISHED, 400, "the next attempt to finish")
        log2 = (stack.run_dir(job_id) / "logs" / "attempt-2.log").read_text(errors="replace")
        assert job["state"] == "succeeded", (job, log2[-4000:])
        assert len(job["attempts"]) == 2, [(a["number"], a["worker_id"], a["outcome"], a["reason"], a["slurm"]) for a in job["attempts"]]
        first, second = job["attempts"]
        assert first["outcome"] == "requeued" and "lease expired" in first["reason"], first
        assert first["slurm"]["state"] == "CANCELLED", first["slurm"]
        assert second["worker_id"] == "slurm-w2" and second["slurm"]["job_id"] != orphan
        record = slurm_job(stack, orphan)
        assert "JobState=CANCELLED" in record, record
        orphan_end = re.search(r"EndTime=(\S+)", record).group(1)
        second_start = re.search(r"StartTime=(\S+)", slurm_job(stack, second["slurm"]["job_id"])).group(1)
        assert orphan_end <= second_start  # ISO times: the orphan was gone first
        assert re.search(r"resumed from \S*step_\d{7}\.pt at step \d+", log2), log2[-3000:]
        series = {s["name"]: s for s in client.get(f"/jobs/{job_id}/metrics").json()["series"]}
        assert [p["step"] for p in series["loss"]["points"]] == list(range(1, 15))
