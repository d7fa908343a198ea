"""Run sam3's own video evaluator suite (YTVIS mask/box mAP, phrase AP, TETA, HOTA, cgF1).

The upstream code reads and writes files and prints a great deal (also from its worker
processes), so it runs in a scratch directory with stdout/stderr sent to a log file there;
the log's tail is attached to any error.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

# sam3's HOTA and TETA toolkits fork multiprocessing Pools, whose workers inherit this
# process's Python signal handlers. The trainer catches SIGTERM (to checkpoint), so
# Pool.terminate() could not stop those workers and the evaluation hung in join() forever.
# Children forked while the suite runs get the default SIGTERM action back.
_suite_running = False


def _default_sigterm_in_child() -> None:
    if _suite_running:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_default_sigterm_in_child)


@contextlib.contextmanager
def _output_to(path: Path):
    # File-descriptor level, because the evaluators' multiprocessing workers write to fd 1/2
    # directly; contextlib.redirect_stdout would only catch this process's print().
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "w") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


class EvaluatorError(RuntimeError):
    pass


def run_saco_suite(gt: dict, predictions: list[dict]) -> dict:
    """{"dataset_results": {metric: value}, "video_np_results": [...]} from VEvalEvaluator.

    `predictions` must be non-empty (the upstream loader indexes the first one).
    """
    # Imported here: pulling in sam3.eval costs seconds and most callers of the package
    # (linking, J&F) do not need it.
    from sam3.eval.saco_veval_eval import VEvalEvaluator
    from sam3.eval.saco_veval_evaluators import VideoTetaEvaluator

    with tempfile.TemporaryDirectory(prefix="sam3v-eval-") as scratch:
        scratch = Path(scratch)
        gt_file, pred_file = scratch / "gt.json", scratch / "predictions.json"
        out_file, log_file = scratch / "eval_results.json", scratch / "evaluator.log"
        gt_file.write_text(json.dumps(gt))
        pred_file.write_text(json.dumps(predictions))
        global _suite_running
        _suite_running = True
        try:
            with _output_to(log_file):
                evaluator = VEvalEvaluator(str(gt_file), str(out_file))
                teta = next(e for e in evaluator.evaluators if isinstance(e, VideoTetaEvaluator))
                skip_teta = not any(p["score"] >= teta.prob_thresh and any(p["segmentations"])
                                    for p in predictions)
                if skip_teta:
                    # The TETA toolkit indexes the first confident prediction and crashes
                    # when there is none; with nothing to localise or associate, TETA is 0.
                    evaluator.evaluators.remove(teta)
                results = evaluator.run_eval(str(pred_file))
        except Exception as err:
            tail = log_file.read_text()[-2000:] if log_file.exists() else ""
            raise EvaluatorError(f"sam3 video evaluator failed: {err!r}\n{tail}") from err
        finally:
            _suite_running = False
    if skip_teta:
        results["dataset_results"][f"{teta.dataset_name}_mask_teta"] = 0.0
    return results
