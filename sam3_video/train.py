"""The training program: one readable loop for 1..N processes.

    torchrun --standalone --nproc_per_node=N -m sam3_video.train --config FILE --run-dir DIR
    python -m sam3_video.train --config FILE --run-dir DIR

FILE is a TrainConfig (bare, or inside a job.json envelope). What is trained comes from
the task (sam3_video.tasks); everything here is generic. Writes DIR/metrics.jsonl,
DIR/tb/, DIR/checkpoints/step_XXXXXXX.pt and, with data.val, DIR/evaluation.json (and,
detect, DIR/overlays/<video>_vs_truth.png drawn at the final evaluation).
Resumes by itself from the newest checkpoint in DIR/checkpoints that loads.
Exit codes: sam3_video.exit_codes (2 config/data, 3 out of memory, 74 disk full, 75 stopped
by SIGTERM).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import resource
import signal
import sys
import time
from pathlib import Path

import torch
import torch.distributed as torch_dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from sam3_video import checkpoint, distributed, exit_codes, lora
from sam3_video.config import ConfigError, TrainConfig, load_config_file
from sam3_video.failures import report_failure
from sam3_video.metrics_log import MetricsLog
from sam3_video.optim import build_optimizer, build_scheduler, logged_group
from sam3_video.run_layout import CHECKPOINT_DIR, EVALUATION_FILE, OVERLAYS_DIR, write_json_atomic
from sam3_video.sampler import ResumableSampler, SeededSamples, seed_everything
from sam3_video.tasks import Task, get_task

log = logging.getLogger("sam3_video.train")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sam3_video.train", description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="TrainConfig JSON or job.json envelope")
    p.add_argument("--run-dir", required=True, help="where metrics and checkpoints go")
    return p.parse_args(argv)


class StopFlag:
    """Set by SIGTERM; the loop finishes the current step, checkpoints and exits 75."""

    def __init__(self):
        self.requested = False
        self.owner = os.getpid()
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        if os.getpid() != self.owner:
            # A forked child (a DataLoader worker, the multiprocessing pool of sam3's HOTA
            # evaluator) inherits this handler; its parent ends it with SIGTERM and waits,
            # so it must die as it would by default, not wait for a training step.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        if not self.requested:
            print("SIGTERM received: finishing this step, then checkpointing", flush=True)
        self.requested = True


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    if cfg.amp == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[cfg.amp]


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def endless(loader: DataLoader, sampler: ResumableSampler):
    """Yield (n_items, batch) forever; each new pass starts where the sampler stands."""
    while True:
        empty = True
        for n, batch in loader:
            empty = False
            yield n, batch
        if empty:
            raise RuntimeError(f"the data loader yielded nothing (sampler at {sampler.state_dict()})")


class Trainer:
    def __init__(self, cfg: TrainConfig, task: Task, dist: distributed.Dist, run_dir: Path):
        self.cfg, self.task, self.dist, self.run_dir = cfg, task, dist, run_dir
        self.ckpt_dir = run_dir / CHECKPOINT_DIR
        self.device = dist.device
        self.dtype = amp_dtype(cfg, self.device)
        self.stop = StopFlag()
        self.metrics = MetricsLog(run_dir, enabled=dist.is_main)
        self.evaluation_path = run_dir / EVALUATION_FILE

        seed_everything(cfg.seed)  # same initial weights on every rank
        self.model = task.build_model().to(self.device)
        self.model.train()
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.logged_group = logged_group(self.optimizer)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, cfg.max_steps)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        dataset = task.train_dataset()
        self.sampler = ResumableSampler(len(dataset), dist.rank, dist.world_size, seed=cfg.seed)
        # Every iter(loader) (each pass of `endless`, so every epoch and once more on resume)
        # draws a base seed for worker seeding. From the global generator that draw would
        # shift the training RNG stream (track prompts, dropout) in a resumed run, which
        # starts a pass mid-epoch; this generator takes it instead. Items need no worker
        # seed: SeededSamples reseeds every item.
        self.loader = DataLoader(
            SeededSamples(dataset), batch_size=cfg.data.batch_size_per_gpu, sampler=self.sampler,
            num_workers=cfg.data.num_workers, generator=torch.Generator().manual_seed(cfg.seed),
            collate_fn=lambda items: (len(items), task.collate(items)))
        self.step = 0
        self.resumed_from = self._resume()
        if self.resumed_from is None:
            seed_everything(cfg.seed + dist.rank)  # per-rank stream for any training randomness
        self.param_counts = lora.count_parameters(self.model)
        if dist.is_main:
            print(f"parameters: {self.param_counts['total']} total, "
                  f"{self.param_counts['trainable']} trainable", flush=True)
        if self.resumed_from is None:  # one line per run, before any step's; ints, not scalars
            self.metrics.write(0, {}, params_total=self.param_counts["total"],
                               params_trainable=self.param_counts["trainable"])

        self.ddp = None
        if dist.enabled:
            self.ddp = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=task.find_unused_parameters)
        self.forward_model = self.ddp or self.model
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]

    # -- checkpoints -------------------------------------------------------------------

    def _resume(self) -> str | None:
        state = checkpoint.load_latest(self.ckpt_dir)
        if state is None:
            return None
        self._load_model_state(state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        self.step = state["step"]
        rng = state["rng"]
        # One RNG state per rank; with a different world size rank r reuses what it can.
        checkpoint.restore_rng_states(rng[self.dist.rank % len(rng)])
        print(f"resumed from {state['path']} at step {self.step}", flush=True)
        return state["path"]

    def _load_model_state(self, state: dict) -> None:
        """A full run's checkpoint holds the whole model; a LoRA run's (model.lora) only
        what trains, on top of a frozen base that must be the one this run built."""
        entry = lora.lora_of_checkpoint(state)
        where = f"checkpoint {state['path']}"
        if self.cfg.model.lora is None:
            if entry is not None:
                raise ConfigError([f"model.lora: {where} is of a LoRA run; this run has no model.lora"])
            self.model.load_state_dict(state["model"])
            return
        if entry is None:
            raise ConfigError([f"model.lora: {where} is of a run without LoRA"])
        expected = lora.lora_entry(self.cfg.model, self.cfg.seed)
        if entry["base"] != expected["base"]:
            raise ConfigError([f"model.init: {where} trained adapters on another base "
                               f"({entry['base']}) than this run builds ({expected['base']}); "
                               "refusing to resume"])
        if entry["config"] != expected["config"]:
            raise ConfigError([f"model.lora: {where} has other adapters ({entry['config']})"])
        lora.load_trainable_state(self.model, state["model"], where)

    def model_state(self) -> dict:
        """The model's part of a checkpoint: everything, or for LoRA only what trains."""
        if self.cfg.model.lora is None:
            return {"model": self.model.state_dict()}
        return {"model": lora.trainable_state(self.model),
                lora.LORA_KEY: lora.lora_entry(self.cfg.model, self.cfg.seed)}

    def save_checkpoint(self) -> None:
        rng = [checkpoint.rng_states()]
        if self.dist.enabled:
            rng = [None] * self.dist.world_size
            torch_dist.all_gather_object(rng, checkpoint.rng_states())
        if self.dist.is_main:
            state = {
                "step": self.step,
                **self.model_state(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "sampler": self.sampler.state_dict(),
                "rng": rng,
                "world_size": self.dist.world_size,
                "config": self.cfg.model_dump(mode="json"),
            }
            path = checkpoint.save_atomic(state, self.ckpt_dir / checkpoint.checkpoint_name(self.step))
            checkpoint.prune(self.ckpt_dir, self.cfg.keep_last)
            print(f"checkpoint {path}", flush=True)
        distributed.barrier(self.dist)

    # -- evaluation --------------------------------------------------------------------

    def evaluate(self, phase: str) -> None:
        """Rank 0 evaluates the plain model on data.val; the others wait. The RNG state is
        restored afterwards so evaluating never changes what training does next."""
        if self.cfg.data.val is None:
            return
        if self.dist.is_main:
            saved = checkpoint.rng_states()
            self.model.eval()
            with torch.no_grad(), self.autocast():
                # the final evaluation also draws what the model predicts next to the truth
                overlays = self.run_dir / OVERLAYS_DIR if phase == "final" else None
                results = self.task.evaluate(self.model, self.cfg.data.val, overlays_dir=overlays)
            self.model.train()
            checkpoint.restore_rng_states(saved)
            self.metrics.write(self.step, {f"val/{k}": v for k, v in results.items()}, phase=phase)
            if phase in ("base", "final"):
                evaluation = {}
                if self.evaluation_path.exists():
                    evaluation = json.loads(self.evaluation_path.read_text())
                evaluation[phase] = {"step": self.step, **results}
                write_json_atomic(self.evaluation_path, evaluation, indent=2)
        distributed.barrier(self.dist)

    def has_evaluation(self, phase: str) -> bool:
        return (self.evaluation_path.exists()
                and phase in json.loads(self.evaluation_path.read_text()))

    # -- the loop ----------------------------------------------------------------------

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def train_step(self, batches) -> dict[str, float]:
        """One optimiser step over grad_accum_steps micro-batches; returns logged values."""
        cfg = self.cfg
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        frames = 0
        for micro in range(cfg.grad_accum_steps):
            n, batch = next(batches)
            self.sampler.advance(n)
            last = micro == cfg.grad_accum_steps - 1
            # Only the last micro-batch all-reduces gradients under DDP.
            sync = contextlib.nullcontext() if (self.ddp is None or last) else self.ddp.no_sync()
            # TorchScript off: sam3's loss calls @torch.jit.script functions (box_ops'
            # fast_diag_generalized_box_iou); the JIT's profiling executor runs a
            # function's first call(s) in a process as plain ops and later ones as an
            # optimised graph whose autodiff backward differs in the last bits. A resumed
            # run's first steps would then not reproduce the uninterrupted run's.
            with sync, torch.jit.optimized_execution(False):
                with self.autocast():
                    losses = self.task.loss(self.forward_model, batch)
                self.scaler.scale(losses["loss"] / cfg.grad_accum_steps).backward()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) / cfg.grad_accum_steps
            frames += self.task.num_frames(batch)
        self.scaler.unscale_(self.optimizer)
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.trainable, cfg.grad_clip)
        lr = self.optimizer.param_groups[self.logged_group]["lr"]  # the transformer's rate
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        sums["lr"] = lr
        sums["frames"] = float(frames)
        return sums

    def run(self) -> int:
        cfg = self.cfg
        if self.resumed_from is None and not self.has_evaluation("base"):
            self.evaluate("base")
        batches = endless(self.loader, self.sampler)
        while self.step < cfg.max_steps:
            start = time.perf_counter()
            values = self.train_step(batches)
            stop = distributed.any_rank(self.stop.requested, self.dist)
            if self.step % cfg.log_every == 0 or self.step == cfg.max_steps or stop:
                self._log_step(values, time.perf_counter() - start)
            if stop:
                self.save_checkpoint()
                print(f"stopped by SIGTERM at step {self.step}", flush=True)
                return exit_codes.PREEMPTED
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.max_steps:
                self.save_checkpoint()
            if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.max_steps:
                self.evaluate("periodic")
        if not self.has_evaluation("final"):
            self.evaluate("final")
        if self.dist.enabled:
            # Every rank prints its own; equal lines prove DDP kept the replicas in sync.
            print(f"rank {self.dist.rank} parameter checksum {self.parameter_checksum():.10e}",
                  flush=True)
        return exit_codes.OK

    def parameter_checksum(self) -> float:
        with torch.no_grad():
            return sum(float(p.double().abs().sum()) for p in self.model.parameters())

    def _log_step(self, values: dict[str, float], seconds: float) -> None:
        frames = values.pop("frames")
        lr = values.pop("lr")
        names = sorted(values)
        # Losses are averaged over ranks (one all-reduce); frames are summed.
        if self.dist.enabled:
            t = torch.tensor([values[k] for k in names] + [frames], dtype=torch.float64,
                             device=self.device)
            torch_dist.all_reduce(t)
            values = {k: float(v) / self.dist.world_size for k, v in zip(names, t[:-1].tolist())}
            frames = float(t[-1])
        record = {"epoch": self.sampler.epoch_progress, "loss": values.pop("loss"), "lr": lr,
                  "frames_per_s": frames / max(seconds, 1e-9),
                  "peak_mem_mb": peak_memory_mb(self.device), **values}
        self.metrics.write(self.step, record)
        if self.dist.is_main:
            print(f"step {self.step}/{self.cfg.max_steps} loss {record['loss']:.4f} "
                  f"lr {lr:.3g} {record['frames_per_s']:.1f} frames/s", flush=True)

    def close(self) -> None:
        self.metrics.close()


def check_devices(cfg: TrainConfig) -> None:
    if cfg.gpus > 0 and not torch.cuda.is_available():
        raise RuntimeError(f"gpus={cfg.gpus} but no CUDA device is visible to this process")


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run_dir = Path(args.run_dir)
    # Everything the user can get wrong is checked before a process group or model exists.
    try:
        cfg = load_config_file(args.config, "train")
        task = get_task(cfg)
        task.check()
    except ConfigError as err:
        return report_failure(err)
    check_devices(cfg)
    dist = distributed.init(use_cuda=cfg.gpus > 0)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = None
    try:
        trainer = Trainer(cfg, task, dist, run_dir)
        return trainer.run()
    except (ConfigError, RuntimeError, MemoryError, OSError) as err:  # OSError: disk full
        code = report_failure(err)
        if code is None:
            raise
        return code
    finally:
        if trainer is not None:
            trainer.close()
            holders = (trainer.ddp,) if trainer.ddp is not None else ()
            trainer.ddp = trainer.forward_model = None
            del trainer
            distributed.shutdown(*holders)
        else:
            distributed.shutdown()


if __name__ == "__main__":
    sys.exit(main())
