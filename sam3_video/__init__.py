"""Multi-frame SAM3 fine-tuning: job specs, models, data, trainer, evaluator, export.

Job specs and the run directory (torch-free; the service imports these):
    config.py       TrainConfig / EvalConfig / PredictConfig, the one spec resolver (paths under DATA_ROOT)
    run_layout.py   the run-directory contract: file names, checkpoint names, atomic JSON
    exit_codes.py   the programs' exit codes, which the worker classifies failures by

Models and data:
    weights.py      the one loader of weights files (weights_only=True), sam3.pt's layout
    backbone/       presets and the vision backbone that detector and tracker share
    detector/       the `detect` task: VideoSam3, its builder, loss, evaluation, DetectTask
    tracker/        the `track` task: the trainable tracker, prompts, clips, loss, evaluation
    tasks.py        the Task protocol and the registry of tasks (get_task)
    checks.py       dataset and weights-file checks every task runs before training
    data/           the native dataset format, sam3's dataset over it, masks, synthetic data
    metrics/        video metrics of masklets: J&F, sam3's evaluators, linking, scoring
    lora.py         freezing by name pattern, LoRA adapters (peft): add, merge, checkpoints
    compat.py       every workaround for a pitfall of the `sam3` package, in one place

Programs and their generic parts:
    train.py        python -m sam3_video.train: the training loop for 1..N processes
    evaluate.py     python -m sam3_video.evaluate: predictions and metrics of a model
    export.py       python -m sam3_video.export: a checkpoint in the upstream sam3.pt layout
    predict.py      python -m sam3_video.predict: masklets and overlays of a model on one video
    overlays.py     masks drawn on frames: contact sheets, .mp4 (PyAV), prediction vs truth
    checkpoint.py   training checkpoints: atomic writes, keep-last-K, resume, RNG states
    distributed.py  process-group setup for torchrun and plain python
    optim.py        AdamW parameter groups (per-module rates, layer decay) and lr schedules
    sampler.py      the resumable distributed sampler and per-item seeding
    metrics_log.py  rank 0's metrics.jsonl and TensorBoard sink
    failures.py     exception -> exit code, shared by trainer and evaluator
"""
