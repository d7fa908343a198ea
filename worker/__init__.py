"""The worker: turns a queued job into a supervised torchrun process.

One Celery worker process per GPU set, concurrency 1, one queue:

    celery -A worker.celery_app worker -Q cpu --concurrency 1
    python -m worker            # the same, queue picked from SAM3V_WORKER_GPUS

The worker never imports torch (Celery forks; CUDA must not be initialised in the
parent). Training runs only in the torchrun child, `sam3_video.train` / `.evaluate`.

What it shares with the API and the launcher lives in jobstore/ (the worker imports
nothing of api/ or deploy/): the job store and its transitions, the Settings, the one
Celery producer (jobstore.broker.enqueue: requeues, misrouted deliveries, the reaper's
re-sends) and the one recovery rule (jobstore.recovery: another attempt while attempts
remain, else failed). Run-directory names come from sam3_video.run_layout; a job's run
directory is RUNS_ROOT/job-<id> (run_layout.job_dir), never stored.

Modules, one job each:
    celery_app  the Celery app, its settings, the worker's identity and the shutdown/reaper hooks
    tasks       run_job: claim, write job.json (paths resolved by sam3_video.config.resolve_paths),
                launch, supervise, finish or hand to the recovery rule
    launch      build the torchrun argument list and start it (own session, PDEATHSIG)
    launchers   where the trainer runs, behind one interface: local (launch + proctree)
                or slurm (sbatch of srun torchrun across nodes, followed with scontrol)
    proctree    process trees: the job's (remember every descendant, terminate them all and
                confirm) and the local stack's children (used by deploy/launcher.py)
    ingest      tail metrics.jsonl, find new checkpoints, estimate the ETA
    supervise   the loop: lease, ingest, cancel, shutdown, limits
    limits      the job's time limit and run-directory disk quota (failure kinds
                time_limit, disk_quota; never retried)
    reaper      the recovery rule for expired leases, re-send lost broker messages

Environment (all read through `jobstore.settings.Settings`, prefix SAM3V_):
    SAM3V_BROKER_URL            redis://host:port/db carrying "please run job N"
    SAM3V_DATABASE_URL          the job store (source of truth for job state)
    SAM3V_DATA_ROOT, SAM3V_RUNS_ROOT (or DATA_ROOT, RUNS_ROOT)
                                datasets; run directories (RUNS_ROOT/job-<id>)
    SAM3V_WORKER_GPUS           "" = a CPU worker serving queue "cpu";
                                "0,1" = owns GPUs 0 and 1, serves "gpu2" and exports
                                CUDA_VISIBLE_DEVICES=0,1 to its trainer
    SAM3V_WORKER_QUEUE          optional override of the queue name (tests, odd setups)
    SAM3V_WORKER_ID             name recorded on claimed jobs (default host-pid)
    SAM3V_LEASE_SECONDS         lease length; renewed every lease/3 (at most 5 s);
                                the reaper runs every lease/2 (at most 30 s)
    SAM3V_MAX_ATTEMPTS          infrastructure failures are retried up to this; config,
                                oom, disk_full (exit code 74 or ENOSPC in the log or in
                                the worker's own write), time_limit and disk_quota
                                fail at once (another attempt would fail the same way)
    SAM3V_VISIBILITY_TIMEOUT_S  Redis redelivers an unacked message after this; keep it
                                longer than the longest job (a redelivery is harmless:
                                the claim makes it a no-op)
    SAM3V_CANCEL_GRACE_S        seconds between SIGTERM (trainer checkpoints) and SIGKILL
                                on cancel and on worker shutdown (default 30)
    SAM3V_LAUNCHER              local (torchrun on this host) or slurm (sbatch to a cluster
                                that mounts RUNS_ROOT; the worker also serves slurm-<queue>)
    SAM3V_SLURM_PARTITION, SAM3V_SLURM_ACCOUNT, SAM3V_SLURM_TIME_LIMIT,
    SAM3V_SLURM_EXTRA_OPTIONS   what sbatch is given (deploy/README.md, SLURM section)

Stopping a worker: SIGTERM (docker stop) is a warm shutdown. The running job's trainer
gets SIGTERM, writes a checkpoint and exits; the job goes back to the queue and its
message is re-sent, then the worker exits. Give the container a stop grace period of
at least SAM3V_CANCEL_GRACE_S + 10 s.
"""
