"""The SLURM launcher: one attempt is one batch job on a cluster that mounts RUNS_ROOT.

Start: the worker writes RUN_DIR/slurm/job-<attempt>.sbatch (kept for people to read) and
submits it with `sbatch --parsable`. The script runs `srun`, one task per node, of torchrun
with c10d rendezvous on the job's first node:

    python -m torch.distributed.run --nnodes=$SLURM_NNODES --nproc_per_node=G
        --rdzv_backend=c10d --rdzv_endpoint=<first node>:<port> --rdzv_id=$SLURM_JOB_ID
        -m sam3_video.train --config RUN_DIR/job.json --run-dir RUN_DIR

Its output goes to RUN_DIR/logs/attempt-N.log; metrics and checkpoints arrive in the run
directory as from a local run, so the supervisor ingests them the same way.

Environment: sbatch runs with the trainer's allowlisted environment (launch.child_env)
plus SLURM_CONF, and exports exactly that to the job (sbatch's --export=ALL): nothing
the worker holds for itself reaches the nodes.

Following: `scontrol show job` every SAM3V_SLURM_POLL_S (squeue's view, plus the exit
code and restarts). Without accounting (no slurmdbd) the controller forgets a finished
job after MinJobAge; then `sacct`, where the cluster has accounting.

Stopping: `scancel --signal=TERM` sends SIGTERM to the job's steps, i.e. to each node's
torchrun, which forwards it to its ranks: they checkpoint and exit. Not `--full`: that
signals the batch step too, and srun answers SIGTERM by killing the step at once (the
ranks get SIGKILL before they can checkpoint). After the grace period a plain `scancel`;
a job still pending is cancelled at once.

How an attempt ends: COMPLETED -> 0; FAILED -> the job's exit code (torchrun's report in
the log names the failing rank's own code); OUT_OF_MEMORY -> the trainer's out-of-memory
code. NODE_FAIL, BOOT_FAIL, TIMEOUT, DEADLINE, PREEMPTED, a requeue by SLURM or a cancel
by someone else are an Interruption: the job resumes from its newest checkpoint as the
next attempt, as after a killed worker. Jobs are submitted with --no-requeue so that
SLURM never runs an attempt a second time behind the service's back.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from jobstore.settings import Settings
from sam3_video import exit_codes
from sam3_video.run_layout import (JOB_FILE, SLURM_DIR, log_path, slurm_record_path,
                                   slurm_script_path, write_json_atomic)
from worker.launch import PROGRAMS
from worker.launchers.base import Interruption

log = logging.getLogger(__name__)

# Job states in which nothing of the job runs any more (scontrol prints COMPLETING while
# processes are still being cleaned up, so these are final).
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
         "DEADLINE", "OUT_OF_MEMORY", "REVOKED", "SPECIAL_EXIT"}
# Ended by the cluster, not by the trainer: resumed from the newest checkpoint.
INTERRUPTED = {"NODE_FAIL": "node_failure", "BOOT_FAIL": "node_failure",
               "TIMEOUT": "node_failure", "DEADLINE": "node_failure", "PREEMPTED": "preempted"}
FIELD = re.compile(r"(\w[\w/:]*)=(\S*)")
STOP_WAIT_S = 120  # after the last scancel: SLURM's KillWait and step clean-up


def slurm(argv: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def exit_status(text: str) -> int:
    """SLURM's ExitCode "rc:signal" -> a shell-style code (128 + signal when killed)."""
    rc, _, sig = text.partition(":")
    try:
        rc_value, sig_value = int(rc or 0), int(sig or 0)
    except ValueError:
        return 1
    return rc_value if rc_value or not sig_value else 128 + sig_value


def job_info(job_id: str) -> dict[str, str] | None:
    """The controller's view of the job (JobState, ExitCode, NodeList, Restarts...), or
    the accounting's once the controller forgot it; None if neither knows it."""
    done = slurm(["scontrol", "show", "job", "-o", job_id])
    if done.returncode == 0 and done.stdout.strip():
        return dict(FIELD.findall(done.stdout))
    if "Invalid job id" not in done.stderr:  # the controller is unreachable or busy: ask again
        raise OSError(f"scontrol show job {job_id}: {done.stderr.strip()[-500:]}")
    acct = slurm(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State,ExitCode,NodeList"])
    line = acct.stdout.strip().splitlines()[0] if acct.returncode == 0 and acct.stdout.strip() else ""
    if line.count("|") == 2:
        state, code, nodes = line.split("|")
        return {"JobState": state.split()[0], "ExitCode": code, "NodeList": nodes, "Restarts": "0"}
    return None


def hostnames(nodelist: str) -> list[str]:
    """node[1-2] -> [node1, node2] (scontrol's own expansion)."""
    if not nodelist or nodelist == "(null)":
        return []
    done = slurm(["scontrol", "show", "hostnames", nodelist])
    return done.stdout.split() if done.returncode == 0 else [nodelist]


class SlurmLaunch:
    def __init__(self, job_id: str, run_dir: Path, attempt: int, poll_s: float):
        self.job_id = job_id
        self.record = slurm_record_path(run_dir, attempt)
        self.log_path = log_path(run_dir, attempt)
        self.poll_s = poll_s
        self.state = "PENDING"
        self.nodelist = ""
        self.nodes: list[str] = []
        self.exit_code: int | None = None
        self.ended_by: Interruption | None = None
        self.stopping = False     # we asked SLURM to cancel: CANCELLED is ours
        self.next_update = 0.0

    # -------------------------------------------------------------- following

    def refresh(self) -> None:
        if self.exit_code is None and time.monotonic() >= self.next_update:
            self.update()

    def poll(self) -> int | None:
        self.refresh()
        return self.exit_code

    def wait(self, timeout: float) -> None:
        time.sleep(timeout)

    def update(self) -> None:
        self.next_update = time.monotonic() + self.poll_s
        try:
            info = job_info(self.job_id)
        except (OSError, subprocess.TimeoutExpired) as err:  # a busy controller: next time
            log.warning("SLURM job %s: asking its state failed: %s", self.job_id, err)
            return
        if info is None:
            self.end("UNKNOWN", None, Interruption(
                "node_failure", f"SLURM job {self.job_id} is unknown to the controller and "
                                "to accounting; resumes from the latest checkpoint"))
            return
        state = info.get("JobState", "UNKNOWN")
        if info.get("NodeList", "") not in ("", "(null)") and info["NodeList"] != self.nodelist:
            self.nodelist = info["NodeList"]
            self.nodes = hostnames(self.nodelist)
        if state != self.state:
            log.info("SLURM job %s: %s -> %s on %s", self.job_id, self.state, state, self.nodelist)
            self.state = state
            self.write_record()
        if int(info.get("Restarts", "0") or 0) > 0 and state not in ENDED and not self.stopping:
            # Requeued by SLURM (an admin, or a preemption that requeues): the service
            # resumes it as its next attempt instead, so stop this one for good.
            self.kill()
            self.end(state, 1, Interruption("preempted", f"SLURM requeued job {self.job_id}; "
                                            "resumes from the latest checkpoint"))
            return
        if state in ENDED:
            self.end(state, exit_status(info.get("ExitCode", "0:0")), self.interruption_of(state, info))

    def interruption_of(self, state: str, info: dict[str, str]) -> Interruption | None:
        where = f" on {self.nodelist}" if self.nodelist else ""
        if state in INTERRUPTED:
            return Interruption(INTERRUPTED[state], f"SLURM job {self.job_id} ended {state}{where} "
                                f"(reason: {info.get('Reason', '?')}); resumes from the latest checkpoint")
        if state == "CANCELLED" and not self.stopping:
            return Interruption("node_failure", f"SLURM job {self.job_id} was cancelled outside "
                                                "the service; resumes from the latest checkpoint")
        return None

    def end(self, state: str, code: int | None, interruption: Interruption | None) -> None:
        self.state = state
        if state == "COMPLETED":
            code = 0
        elif state == "OUT_OF_MEMORY":
            code = exit_codes.OUT_OF_MEMORY
        self.exit_code = 1 if code is None else code
        self.ended_by = interruption
        self.write_record()

    def write_record(self) -> None:
        try:
            write_json_atomic(self.record, self.facts(), indent=2)
        except OSError as err:  # for people only; the job does not depend on it
            log.warning("SLURM job %s: writing %s failed: %s", self.job_id, self.record, err)

    def facts(self) -> dict:
        return {"slurm_job_id": self.job_id, "nodes": self.nodes, "state": self.state}

    def interruption(self) -> Interruption | None:
        return self.ended_by

    # -------------------------------------------------------------- stopping

    def terminate(self, grace_s: float) -> list[str]:
        if self.exit_code is not None:
            return []
        self.stopping = True
        self.update()
        if self.state == "PENDING":  # nothing runs yet, nothing to checkpoint
            slurm(["scancel", self.job_id])
            return self.wait_ended(STOP_WAIT_S)
        slurm(["scancel", "--signal=TERM", self.job_id])
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            self.update()
            if self.exit_code is not None:
                return []
            time.sleep(min(self.poll_s, 1.0))
        slurm(["scancel", self.job_id])
        return self.wait_ended(STOP_WAIT_S)

    def kill(self) -> list[str]:
        if self.exit_code is not None:
            return []
        self.stopping = True
        slurm(["scancel", "--signal=KILL", "--full", self.job_id])
        slurm(["scancel", self.job_id])
        return self.wait_ended(STOP_WAIT_S)

    def wait_ended(self, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.update()
            if self.exit_code is not None or self.state in ENDED:
                return []
            time.sleep(min(self.poll_s, 1.0))
        return [f"SLURM job {self.job_id} ({self.state})"]


class SlurmLauncher:
    name = "slurm"

    def __init__(self, settings: Settings):
        self.settings = settings

    def start(self, kind: str, gpus: int, nodes: int, run_dir: Path, attempt: int,
              env: dict[str, str]) -> SlurmLaunch:
        self.cancel_earlier_attempts(run_dir, attempt)
        script = slurm_script_path(run_dir, attempt)
        script.parent.mkdir(parents=True, exist_ok=True)
        argv = ["sbatch", "--parsable", *shlex.split(self.settings.slurm_extra_options), str(script)]
        script.write_text(self.script(kind, gpus, nodes, run_dir, attempt, argv))
        logfile = log_path(run_dir, attempt)
        logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(logfile, "ab") as f:
            f.write(f"$ {shlex.join(argv)}\n".encode())
        done = slurm(argv, env=self.job_env(env, gpus))
        if done.returncode != 0:
            raise RuntimeError(f"sbatch failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
        job_id = done.stdout.strip().split(";")[0]  # "<id>" or "<id>;<cluster>"
        log.info("attempt %s of %s: SLURM job %s", attempt, run_dir.name, job_id)
        launched = SlurmLaunch(job_id, run_dir, attempt, self.settings.slurm_poll_s)
        launched.write_record()
        return launched

    def job_env(self, env: dict[str, str], gpus: int) -> dict[str, str]:
        """The trainer's environment, which sbatch exports to the job. On GPU nodes SLURM
        sets CUDA_VISIBLE_DEVICES from the allocation (--gpus-per-node)."""
        job_env = dict(env)
        if gpus > 0:
            job_env.pop("CUDA_VISIBLE_DEVICES", None)
        if "SLURM_CONF" in os.environ:  # the client's own configuration: where the controller is
            job_env["SLURM_CONF"] = os.environ["SLURM_CONF"]
        return job_env

    def script(self, kind: str, gpus: int, nodes: int, run_dir: Path, attempt: int,
               argv: list[str]) -> str:
        s = self.settings
        job_id = run_dir.name.removeprefix("job-")
        options = [f"--job-name=sam3v-{run_dir.name}", f"--nodes={nodes}", "--ntasks-per-node=1",
                   f"--output={log_path(run_dir, attempt)}", "--open-mode=append",
                   f"--chdir={run_dir}", "--export=ALL", "--no-requeue"]
        if gpus > 0:
            options.append(f"--gpus-per-node={gpus}")
        for flag, value in (("partition", s.slurm_partition), ("account", s.slurm_account),
                            ("time", s.slurm_time_limit)):
            if value:
                options.append(f"--{flag}={value}")
        torchrun = [sys.executable, "-m", "torch.distributed.run", '--nnodes="$SLURM_NNODES"',
                    f"--nproc_per_node={max(1, gpus)}", "--rdzv_backend=c10d",
                    '--rdzv_endpoint="$head_node:$port"', '--rdzv_id="$SLURM_JOB_ID"',
                    "-m", PROGRAMS[kind], "--config", str(run_dir / JOB_FILE),
                    "--run-dir", str(run_dir)]
        quoted = [part if "$" in part else shlex.quote(part) for part in torchrun]
        return "\n".join([
            "#!/bin/bash",
            f"# sam3v job {job_id}, attempt {attempt}: {nodes} node(s) x {max(1, gpus)} process(es).",
            "# Written and submitted by the worker (SAM3V_LAUNCHER=slurm) with:",
            f"#   {shlex.join(argv)}",
            "# Submitting it again by hand runs the attempt outside the service.",
            *(f"#SBATCH {option}" for option in options),
            "set -euo pipefail",
            'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
            f"port=$(( {s.slurm_rdzv_port} + SLURM_JOB_ID % 1000 ))",
            'echo "sam3v: SLURM job $SLURM_JOB_ID on $SLURM_JOB_NODELIST, rendezvous $head_node:$port"',
            "# one torchrun per node; it starts the node's ranks and forwards SIGTERM to them",
            'exec srun --nodes="$SLURM_NNODES" --ntasks-per-node=1 --kill-on-bad-exit=1 \\',
            "    " + " ".join(quoted),
            ""])

    def cancel_earlier_attempts(self, run_dir: Path, attempt: int) -> None:
        """An earlier attempt's SLURM job may still run (its worker was killed before it
        could cancel it): stop it, so two attempts never write one run directory."""
        for record in sorted((run_dir / SLURM_DIR).glob("job-*.json")):
            try:
                number = int(record.stem.removeprefix("job-"))
                facts = json.loads(record.read_text())
            except (ValueError, OSError):
                continue
            if number >= attempt or facts.get("state") in ENDED:
                continue
            earlier = SlurmLaunch(str(facts["slurm_job_id"]), run_dir, number, self.settings.slurm_poll_s)
            earlier.update()
            if earlier.exit_code is None:
                log.warning("SLURM job %s of attempt %s still runs: cancelling it",
                            earlier.job_id, number)
                earlier.kill()
