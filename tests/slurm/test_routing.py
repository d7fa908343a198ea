"""Multi-node jobs reach only SLURM workers: POST /jobs refuses them (422 naming `nodes`)
where no SLURM queue serves them, queues them on slurm-<size> where one does, and a
local worker that gets one anyway sends it back. Plus what the batch script says."""
from __future__ import annotations

import time

import jobstore
from jobstore import broker
from jobstore.settings import Settings, get_settings
from worker import tasks
from worker.celery_app import worker_queues
from worker.launchers import LocalLauncher, SlurmLauncher, launcher_for
from tests.worker.conftest import tiny_train


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_multinode_job_is_refused_without_a_slurm_queue(client, tokens):
    response = client.post("/jobs", headers=auth(tokens["alice"]),
                           json={"kind": "train", "config": tiny_train(nodes=2)})
    assert response.status_code == 422, response.text
    (problem,) = response.json()["errors"]  # the only problem, and it names the field
    assert problem.startswith("nodes: 2 nodes need a SLURM worker"), problem
    assert "SAM3V_SLURM_GPU_COUNTS" in problem


def test_multinode_job_goes_to_the_slurm_queue(settings, tokens, redis_url):
    from fastapi.testclient import TestClient
    from api.main import create_app
    slurm_settings = settings.model_copy(update={"slurm_gpu_counts": [0]})
    with TestClient(create_app(slurm_settings)) as client:
        # This Redis serves the whole test session: earlier tests' jobs (their ids restart at
        # 1 with each fresh database) may still wait on "cpu", so count that queue's messages.
        def messages_on(queue: str) -> int:
            redis_client = broker._redis(slurm_settings)
            return sum(redis_client.llen(key) for key in broker.queue_keys(queue))

        cpu_before, sent = messages_on("cpu"), time.time()
        response = client.post("/jobs", headers=auth(tokens["alice"]),
                               json={"kind": "train", "config": tiny_train(nodes=2)})
        assert response.status_code == 201, response.text
        job = response.json()
        assert (job["nodes"], job["gpus"], job["queue"]) == (2, 0, "slurm-cpu")
        assert job["id"] in broker.waiting_job_ids(slurm_settings, "slurm-cpu", sent - 1)
        assert messages_on("cpu") == cpu_before  # nothing went to the single-host queue
        # a single-node job of the same size still goes to the ordinary queue
        single = client.post("/jobs", headers=auth(tokens["alice"]),
                             json={"kind": "train", "config": tiny_train()}).json()
        assert (single["nodes"], single["queue"]) == (1, "cpu")
        # ... and a GPU count no SLURM worker serves is refused, naming nodes
        refused = client.post("/jobs", headers=auth(tokens["alice"]),
                              json={"kind": "train", "config": tiny_train(nodes=2, gpus=2)})
        assert refused.status_code == 422, refused.text
        assert [e for e in refused.json()["errors"] if e.startswith("nodes:")], refused.text


def test_a_local_worker_sends_a_multinode_job_back(settings, tokens, client, monkeypatch):
    slurm_settings = settings.model_copy(update={"slurm_gpu_counts": [0]})
    # the task reads the job store of the worker's own settings (the environment)
    monkeypatch.setenv("SAM3V_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    engine = jobstore.get_engine(settings)
    with jobstore.session_scope(engine) as s:
        owner = s.query(jobstore.User).filter_by(name="alice").one().id
        job = jobstore.create_job(s, owner_id=owner, kind="train", name=None,
                                  config=tiny_train(nodes=2), gpus=0, queue="slurm-cpu",
                                  priority=0, max_attempts=3)
    sent = time.time()
    assert tasks.run(job.id, slurm_settings) == "misrouted"
    assert jobstore.get_job(job.id, engine=engine).state == "queued"  # not claimed
    assert job.id in broker.waiting_job_ids(slurm_settings, "slurm-cpu", sent - 1)
    get_settings.cache_clear()  # the next test reads its own environment


def test_worker_queues_and_launcher_setting():
    assert worker_queues(Settings(launcher="local")) == ["cpu"]
    assert worker_queues(Settings(launcher="slurm")) == ["cpu", "slurm-cpu"]
    assert worker_queues(Settings(launcher="slurm", worker_gpus="0,1")) == ["gpu2", "slurm-gpu2"]
    assert isinstance(launcher_for(Settings()), LocalLauncher)
    assert isinstance(launcher_for(Settings(launcher="slurm")), SlurmLauncher)


def test_batch_script_carries_the_lab_options(tmp_path):
    settings = Settings(launcher="slurm", slurm_partition="gpu", slurm_account="vision-lab",
                        slurm_time_limit="1-00:00:00", slurm_extra_options="--qos=high --exclusive")
    run_dir = tmp_path / "job-7"
    argv = ["sbatch", "--parsable", "--qos=high", "--exclusive", "x.sbatch"]
    script = SlurmLauncher(settings).script("train", 4, 3, run_dir, 2, argv)
    directives = [line.removeprefix("#SBATCH ") for line in script.splitlines()
                  if line.startswith("#SBATCH ")]
    assert {"--nodes=3", "--ntasks-per-node=1", "--gpus-per-node=4", "--partition=gpu",
            "--account=vision-lab", "--time=1-00:00:00", "--no-requeue",
            f"--output={run_dir}/logs/attempt-2.log", f"--chdir={run_dir}"} <= set(directives)
    assert "sbatch --parsable --qos=high --exclusive x.sbatch" in script  # how it was sent
    srun = script[script.index("exec srun"):]
    for part in ('--nnodes="$SLURM_NNODES"', "--nproc_per_node=4", "--rdzv_backend=c10d",
                 '--rdzv_endpoint="$head_node:$port"', '--rdzv_id="$SLURM_JOB_ID"',
                 "-m sam3_video.train", f"--config {run_dir}/job.json", f"--run-dir {run_dir}"):
        assert part in srun, part
    cpu = SlurmLauncher(Settings(launcher="slurm")).script("train", 0, 2, run_dir, 1, argv)
    assert "--gpus-per-node" not in cpu and "--partition" not in cpu
    assert "--nproc_per_node=1" in cpu
