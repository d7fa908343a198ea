"""A predict job through the whole service: the API (python -m api), a real Celery worker
and torchrun. Train a tiny job, submit `sam3v submit FILE --kind predict` with its
checkpoint (init.job_id), then read the masklets and download the overlays over HTTP with
the Python client and the CLI."""
from __future__ import annotations

import json

import pytest

from client import cli
from client.api_client import Sam3vClient
from tests.worker.conftest import data_root, stack, tiny_train  # noqa: F401  (fixtures)
from tests.worker.test_http_end_to_end import poll_state

from . import PHRASES, VIDEO, decode_mp4

FINISHED = ("succeeded", "failed", "cancelled")


@pytest.mark.slow
def test_train_then_predict_with_its_checkpoint_over_http(stack, tmp_path, capsys):
    stack.start_worker("w1")
    stack.start_api()
    connection = ["--url", stack.api_url, "--token", stack.token]
    with stack.http() as http:
        train = http.post("/jobs", json={"kind": "train", "config": tiny_train()})
        assert train.status_code == 201, train.text
        train_id = train.json()["id"]
        assert poll_state(http, train_id, FINISHED, 180)["state"] == "succeeded"

        spec = tmp_path / "predict.json"
        spec.write_text(json.dumps({
            "model": {"preset": "tiny", "init": {"job_id": train_id}},
            "data": {"video": VIDEO, "phrases": PHRASES, "image_size": 112},
            "score_threshold": 0.0, "max_masklets": 4, "gpus": 0}))
        assert cli.main(["submit", str(spec), "--kind", "predict", *connection]) == 0
        predict_id = int(capsys.readouterr().out.strip().splitlines()[-1])
        job = poll_state(http, predict_id, FINISHED, 180)
        assert job["state"] == "succeeded", job
        assert job["kind"] == "predict"
        series = {s["name"] for s in http.get(f"/jobs/{predict_id}/metrics").json()["series"]}
        assert {"predict/frames", "predict/masklets"} <= series, series

    run_dir = stack.run_dir(predict_id)
    written = json.loads((run_dir / "predictions.json").read_text())
    # (6 training steps teach the tiny model mostly "absent": it may find nothing at all;
    # what is drawn, and where, is checked on random init in test_program)
    assert len(decode_mp4(run_dir / "overlays" / "video_000.mp4")) == written["frames"] == 4
    results = json.loads((run_dir / "results.json").read_text())
    assert results["weights"].endswith(".pt")  # the training job's checkpoint, resolved
    with Sam3vClient(stack.api_url, stack.token) as client:
        page = client.predictions(predict_id, offset=0, limit=2)
        assert (page["video"], page["frames"], page["total"]) == (VIDEO, 4, len(written["masklets"]))
        assert page["masklets"] == written["masklets"][:2]
        overlays = client.overlays(predict_id)
        assert [o["name"] for o in overlays] == ["video_000.mp4", "video_000.png"]
        got = client.download_overlay(predict_id, "video_000.png", tmp_path)
        assert got.read_bytes() == (run_dir / "overlays" / "video_000.png").read_bytes()

    assert cli.main(["predictions", str(predict_id), "--limit", "1", *connection]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["limit"] == 1 and printed["masklets"] == written["masklets"][:1]
    out = tmp_path / "overlays"
    out.mkdir()
    assert cli.main(["overlays", str(predict_id), "-o", str(out), *connection]) == 0
    for name in ("video_000.mp4", "video_000.png"):
        assert (out / name).read_bytes() == (run_dir / "overlays" / name).read_bytes()
    assert cli.main(["overlays", str(train_id), "-o", str(out), *connection]) == cli.EXIT_REFUSED
    assert "no overlays yet" in capsys.readouterr().err  # no data.val: no final evaluation drawn
