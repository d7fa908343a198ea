"""Multi-frame SAM3 fine-tuning: job specs, model, data, trainer, evaluator, export."""
