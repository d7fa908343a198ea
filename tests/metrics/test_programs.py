"""The video metrics through the real programs: python -m sam3_video.evaluate / .train."""
import json

from sam3_video.metrics import HEADLINE_KEYS

from .conftest import run_program


def _in_unit_interval(metrics: dict, keys) -> bool:
    return all(isinstance(metrics[k], float) and 0.0 <= metrics[k] <= 1.0 for k in keys)


def test_eval_job_writes_results_predictions_and_metric_line(data_root, tmp_path):
    config = {"task": "detect", "model": {"preset": "tiny"},
              "data": {"dataset": "synthetic-val"}, "gpus": 0}
    run_dir = tmp_path / "runs" / "eval"
    proc = run_program("evaluate", config, run_dir, data_root)
    assert proc.returncode == 0, proc.stderr[-3000:]

    results = json.loads((run_dir / "results.json").read_text())
    assert _in_unit_interval(results["metrics"], HEADLINE_KEYS)
    assert results["linking"] == "iou-motion-hungarian"
    video = results["video_metrics"]
    assert "video_mask_mAP_50_95" in video["saco"] and "video_mask_all_phrase_HOTA" in video["saco"]
    gt_objects = json.loads((data_root / "synthetic-val" / "annotations.json").read_text())["annotations"]
    assert len(video["davis"]["per_object"]) == len(gt_objects)

    masklets = json.loads((run_dir / "predictions.json").read_text())
    assert len(masklets) == results["metrics"]["num_masklets"] > 0
    assert all(len(m["segmentations"]) == 4 for m in masklets)   # one entry per frame
    # prediction next to ground truth, for a person to look at (the first two videos)
    sheets = sorted((run_dir / "overlays").glob("*_vs_truth.png"))
    assert [p.name for p in sheets] == ["video_000_vs_truth.png", "video_001_vs_truth.png"]

    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 1
    assert _in_unit_interval(lines[0], [f"eval/{k}" for k in HEADLINE_KEYS])


def test_eval_on_a_dataset_without_ground_truth_is_a_config_error(data_root, tmp_path):
    unlabelled = data_root / "unlabelled"
    unlabelled.mkdir(exist_ok=True)
    data = json.loads((data_root / "synthetic-val" / "annotations.json").read_text())
    (unlabelled / "annotations.json").write_text(json.dumps({**data, "annotations": []}))
    (unlabelled / "JPEGImages").symlink_to(data_root / "synthetic-val" / "JPEGImages")
    config = {"task": "detect", "model": {"preset": "tiny"},
              "data": {"dataset": "unlabelled"}, "gpus": 0}
    proc = run_program("evaluate", config, tmp_path / "runs" / "unlabelled", data_root)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "data.dataset" in proc.stderr and "no annotations" in proc.stderr
    assert not (tmp_path / "runs" / "unlabelled" / "results.json").exists()
