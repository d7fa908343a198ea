"""python -m sam3_video.predict on a held-out synthetic video: predictions.json, the
overlay video and contact sheet (masks drawn, nothing else touched), an .mp4 input, track
prompts, and configuration errors that name their field."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_util

from sam3_video.data import masks as rle_masks
from sam3_video.data import write_synthetic
from sam3_video.overlays import sheet_cells
from tests.train.conftest import Launcher

from . import (VIDEO, decode_mp4, dilate, drawn_regions, predict_config, run_in_process,
               source_frames, write_test_mp4)

FRAMES, HEIGHT, WIDTH = 6, 96, 128


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_synthetic(root / "synthetic-val", videos=1, frames=FRAMES, seed=1)
    return root


@pytest.fixture(scope="module")
def folder_run(data_root, tmp_path_factory):
    """The program as the worker starts it (python -m, a subprocess) on a frame folder."""
    runs = tmp_path_factory.mktemp("runs")
    run_dir = runs / "folder"
    proc = Launcher(data_root, runs).run("predict", predict_config(), run_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def test_predictions_have_one_segmentation_per_frame_per_masklet(folder_run):
    predictions = json.loads((folder_run / "predictions.json").read_text())
    assert {k: predictions[k] for k in ("video", "frames", "width", "height", "fps")} == {
        "video": VIDEO, "frames": FRAMES, "width": WIDTH, "height": HEIGHT, "fps": 10.0}
    masklets = predictions["masklets"]
    assert [m["id"] for m in masklets] == [1, 2, 3]  # max_masklets 3
    for m in masklets:
        assert m["phrase"] in ("red square", "blue circle") and 0.0 <= m["score"] <= 1.0
        assert len(m["segmentations"]) == FRAMES
        present = [s for s in m["segmentations"] if s is not None]
        assert present, m["id"]
        for seg in present:  # compressed COCO RLE that pycocotools decodes
            assert seg["size"] == [HEIGHT, WIDTH] and isinstance(seg["counts"], str)
            assert mask_util.area({"size": seg["size"], "counts": seg["counts"].encode()}) > 0


def test_results_and_metrics_line_as_eval_writes_them(folder_run):
    results = json.loads((folder_run / "results.json").read_text())
    assert results["num_masklets"] == 3 and results["frames"] == FRAMES
    assert results["overlays"] == ["video_000.mp4", "video_000.png"]
    assert sorted(p.name for p in (folder_run / "overlays").iterdir()) == results["overlays"]
    lines = [json.loads(line) for line in (folder_run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["step"] == 0
    assert lines[0]["predict/frames"] == FRAMES and lines[0]["predict/masklets"] == 3


def test_contact_sheet_draws_inside_masks_and_leaves_the_rest_exact(folder_run, data_root):
    predictions = json.loads((folder_run / "predictions.json").read_text())
    sheet = np.asarray(Image.open(folder_run / "overlays" / "video_000.png").convert("RGB"))
    sources = source_frames(data_root / VIDEO)
    cells = sheet_cells(FRAMES, (WIDTH, HEIGHT))  # 6 frames: every one is on the sheet
    drawn_pixels = 0
    for t, (x0, y0, x1, y1) in enumerate(cells):
        cell, source = sheet[y0:y1, x0:x1], sources[t]
        union, far = drawn_regions(predictions, t)
        changed = np.any(cell != source, axis=-1)
        assert changed[union].all(), f"frame {t}: a mask pixel was not drawn"
        assert not changed[far].any(), f"frame {t}: a pixel away from every mask changed"
        assert far.mean() > 0.3, f"frame {t}: too little left undrawn to check"
        drawn_pixels += int(union.sum())
    assert drawn_pixels > 0


def test_overlay_video_decodes_to_the_source_frames_with_masks_drawn(folder_run, data_root):
    predictions = json.loads((folder_run / "predictions.json").read_text())
    frames = decode_mp4(folder_run / "overlays" / "video_000.mp4")
    assert len(frames) == FRAMES and frames[0].shape == (HEIGHT, WIDTH, 3)
    sources = source_frames(data_root / VIDEO)
    inside_diffs = []
    for t, (frame, source) in enumerate(zip(frames, sources)):
        union, far = drawn_regions(predictions, t)
        far &= ~dilate(~far, 3)  # chroma subsampling and the codec's blocks smear edges
        diff = np.abs(frame.astype(int) - source.astype(int)).mean(axis=-1)
        # H.264 at crf 18 moves the synthetic frames' pixel noise by about 4.5 on average
        assert diff[far].mean() < 8.0, f"frame {t}: undrawn pixels moved by {diff[far].mean():.1f}"
        if union.any():
            inside_diffs.append(diff[union].mean())
    assert inside_diffs and min(inside_diffs) > 25.0, inside_diffs  # drawn: about 45


def test_an_mp4_video_is_read_with_pyav(data_root, tmp_path):
    clips = data_root / "clips"
    clips.mkdir(exist_ok=True)
    frames = [Image.open(f).convert("RGB") for f in sorted((data_root / VIDEO).glob("*.jpg"))]
    write_test_mp4(clips / "moving shapes.mp4", frames, fps=12)
    cfg = predict_config(data={"video": "clips/moving shapes.mp4", "max_frames": 4})
    assert run_in_process(data_root, cfg, tmp_path / "mp4") == 0
    predictions = json.loads((tmp_path / "mp4" / "predictions.json").read_text())
    assert predictions["video"] == "clips/moving shapes.mp4"
    assert (predictions["frames"], predictions["width"], predictions["height"]) == (4, WIDTH, HEIGHT)
    assert predictions["fps"] == 12.0
    assert all(len(m["segmentations"]) == 4 for m in predictions["masklets"])
    overlays = sorted(p.name for p in (tmp_path / "mp4" / "overlays").iterdir())
    assert overlays == ["moving_shapes.mp4", "moving_shapes.png"]  # a safe file name
    decoded = decode_mp4(tmp_path / "mp4" / "overlays" / "moving_shapes.mp4")
    assert len(decoded) == 4 and decoded[0].shape == (HEIGHT, WIDTH, 3)


@pytest.mark.parametrize("data, field, message", [
    ({"video": "synthetic-val/JPEGImages/no_such_video"}, "data.video", "not found"),
    ({"video": "synthetic-val/annotations.json"}, "data.video", "folder of frames or an .mp4"),
    ({"video": "synthetic-val"}, "data.video", "no frame files"),
    ({"video": "clips/broken.mp4"}, "data.video", "not a readable video"),
])
def test_an_unusable_video_is_a_config_error_naming_data_video(data_root, tmp_path, capsys,
                                                               data, field, message):
    (data_root / "clips").mkdir(exist_ok=True)
    (data_root / "clips" / "broken.mp4").write_bytes(b"this is no video at all")
    assert run_in_process(data_root, predict_config(data=data), tmp_path / "bad") == 2
    err = capsys.readouterr().err
    assert field in err and message in err, err
    assert not (tmp_path / "bad" / "predictions.json").exists()


def test_a_config_without_video_or_phrases_fails_naming_the_field(data_root, tmp_path, capsys):
    cfg = predict_config()
    del cfg["data"]["video"]
    assert run_in_process(data_root, cfg, tmp_path / "novideo") == 2
    assert "data.video: Field required" in capsys.readouterr().err
    assert run_in_process(data_root, predict_config(data={"phrases": []}), tmp_path / "nophrase") == 2
    assert "data.phrases" in capsys.readouterr().err


@pytest.fixture(scope="module")
def prompt_mask(data_root):
    """Frame 0's ground-truth mask of the video's first object, as a PNG a user would give."""
    annotations = json.loads((data_root / "synthetic-val" / "annotations.json").read_text())
    mask = rle_masks.decode(annotations["annotations"][0]["segmentations"][0], HEIGHT, WIDTH)
    Image.fromarray(mask.astype(np.uint8) * 255).save(data_root / "prompt.png")
    return mask


def test_track_propagates_a_mask_a_box_and_clicks_through_the_video(data_root, prompt_mask,
                                                                    tmp_path):
    prompts = [{"frame": 0, "mask": "prompt.png", "label": "target"},
               {"frame": 2, "box": [10, 10, 30, 30]},
               {"frame": 1, "points": [[60, 40, 1], [5, 5, 0]]}]
    cfg = predict_config(task="track", data={"phrases": [], "prompts": prompts})
    assert run_in_process(data_root, cfg, tmp_path / "track") == 0
    predictions = json.loads((tmp_path / "track" / "predictions.json").read_text())
    masklets = predictions["masklets"]
    assert [(m["id"], m["phrase"]) for m in masklets] == [(1, "target"), (2, "object 2"),
                                                          (3, "object 3")]
    assert all(len(m["segmentations"]) == FRAMES for m in masklets)
    # a mask prompt is the object on its frame; frames before a later prompt are tracked back
    first = rle_masks.decode(masklets[0]["segmentations"][0], HEIGHT, WIDTH)
    assert (first & prompt_mask).sum() / (first | prompt_mask).sum() > 0.8
    assert masklets[1]["segmentations"][0] is not None or masklets[1]["segmentations"][1] is not None
    decoded = decode_mp4(tmp_path / "track" / "overlays" / "video_000.mp4")
    assert len(decoded) == FRAMES


@pytest.mark.parametrize("prompt, field, message", [
    ({"frame": 0, "mask": "small.png"}, "data.prompts.0.mask", "the video's frames are 128x96"),
    ({"frame": 0, "mask": "blank.png"}, "data.prompts.0.mask", "no nonzero pixel"),
    ({"frame": FRAMES, "box": [1, 1, 5, 5]}, "data.prompts.0.frame", "past the video's last frame"),
])
def test_an_unusable_prompt_is_a_config_error_naming_it(data_root, tmp_path, capsys, prompt,
                                                        field, message):
    Image.new("L", (64, 48), 255).save(data_root / "small.png")
    Image.new("L", (WIDTH, HEIGHT), 0).save(data_root / "blank.png")
    cfg = predict_config(task="track", data={"phrases": [], "prompts": [prompt]})
    assert run_in_process(data_root, cfg, tmp_path / "bad") == 2
    err = capsys.readouterr().err
    assert field in err and message in err, err


def test_detect_finds_exactly_the_masklets_the_evaluator_links(data_root):
    """All phrases ride in one batch here, one phrase per clip in the evaluator: the same
    model gives the same masklets (the evaluator's eval_clips + linking as the reference)."""
    import torch

    from sam3_video.config import parse_config
    from sam3_video.data import load_native
    from sam3_video.detector import evaluate
    from sam3_video.metrics.linking import link_dataset_detections
    from sam3_video.predict import detect, open_video
    from sam3_video.sampler import seed_everything
    from sam3_video.tasks import get_task

    phrases = ["red square", "blue circle", "green triangle", "yellow circle"]
    cfg = parse_config("predict", predict_config(data={"phrases": phrases}, max_masklets=None))
    root = data_root / "synthetic-val"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATA_ROOT", str(data_root))
        task = get_task(cfg)
        seed_everything(0)
        model = task.build_model().eval()
        masklets, frames, _ = detect(model, open_video(cfg), phrases, task.image_size, 0.0)
        with torch.no_grad():
            detections = evaluate.predict(model, root, task.image_size)
    native = load_native(root)
    reference = link_dataset_detections([d.to_json() for d in detections],
                                        {v.id: v.length for v in native.videos.values()},
                                        score_threshold=0.0)
    assert frames == FRAMES and len(masklets) == len(reference) > 0
    for phrase in phrases:
        ours = [m for m in masklets if m["phrase"] == phrase]
        theirs = sorted((m for m in reference if native.categories[m["category_id"]] == phrase),
                        key=lambda m: -m["score"])
        assert [m["segmentations"] for m in ours] == [m["segmentations"] for m in theirs], phrase
        assert all(abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(ours, theirs)), phrase
