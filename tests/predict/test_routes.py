"""The results routes on the real app: a predict job POSTed and checked, its finished run
directory (written by the real program) served page by page, its overlays listed and
downloaded with Range; names that leave the overlays folder, other users' jobs and jobs
without results are 404."""
from __future__ import annotations

import json

import pytest

from sam3_video.run_layout import job_dir
from tests.api.conftest import (app, auth, client, engine, redis_url, settings,  # noqa: F401
                                tokens, train_body)

from . import VIDEO, predict_config, run_in_process


def submit(client, auth, user="alice", **overrides) -> dict:
    r = client.post("/jobs", json={"kind": "predict", "config": predict_config(**overrides)},
                    headers=auth[user])
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def finished(client, auth, settings):
    """A predict job of alice's whose run directory the program wrote (5 masklets)."""
    job = submit(client, auth, max_masklets=5)
    run_dir = job_dir(settings.runs_root, job["id"])
    assert run_in_process(settings.data_root, predict_config(max_masklets=5), run_dir) == 0
    return job["id"], run_dir


def test_a_predict_job_is_accepted_and_listed_by_kind(client, auth):
    job = submit(client, auth)
    assert job["kind"] == "predict" and job["state"] == "queued"
    assert job["config"]["data"]["video"] == VIDEO  # stored as sent, not resolved
    listed = client.get("/jobs", params={"kind": "predict"}, headers=auth["alice"]).json()["items"]
    assert [j["id"] for j in listed] == [job["id"]]


@pytest.mark.parametrize("data, field, message", [
    ({"video": "synthetic-val/JPEGImages/missing"}, "config.data.video", "not found under DATA_ROOT"),
    ({"video": "synthetic-val/annotations.json"}, "config.data.video", "folder of frames or an .mp4"),
    ({"video": "synthetic-val"}, "config.data.video", "no frame files"),
    ({"video": "../outside"}, "config.data.video", "lies outside DATA_ROOT"),
    ({"phrases": []}, "config.data.phrases", "at least one noun phrase"),
])
def test_a_bad_video_or_missing_phrases_is_422_naming_the_field(client, auth, data, field, message):
    r = client.post("/jobs", json={"kind": "predict", "config": predict_config(data=data)},
                    headers=auth["alice"])
    assert r.status_code == 422, r.text
    assert any(e.startswith(field) and message in e for e in r.json()["errors"]), r.json()


def test_a_track_job_needs_its_prompt_masks_to_exist(client, auth, settings):
    def post(prompts):
        config = predict_config(task="track", data={"phrases": [], "prompts": prompts})
        return client.post("/jobs", json={"kind": "predict", "config": config}, headers=auth["alice"])

    r = post([{"mask": "masks/missing.png"}, {"frame": 1, "box": [1, 2, 3, 4]}])
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == ["config.data.prompts.0.mask: 'masks/missing.png': file not "
                                  "found under DATA_ROOT"]
    (settings.data_root / "masks").mkdir()
    (settings.data_root / "masks" / "object.png").write_bytes(b"png")  # the program decodes it
    r = post([{"mask": "masks/object.png"}, {"frame": 1, "points": [[3, 4, 1]]}])
    assert r.status_code == 201, r.text
    assert r.json()["config"]["data"]["prompts"][0]["mask"] == "masks/object.png"


def test_predictions_are_served_page_by_page(client, auth, finished):
    job_id, run_dir = finished
    written = json.loads((run_dir / "predictions.json").read_text())
    pages, offset = [], 0
    while True:
        r = client.get(f"/jobs/{job_id}/predictions", params={"offset": offset, "limit": 2},
                       headers=auth["alice"])
        assert r.status_code == 200, r.text
        page = r.json()
        assert (page["total"], page["offset"], page["limit"]) == (5, offset, 2)
        assert (page["video"], page["frames"], page["width"], page["height"]) == (VIDEO, 3, 128, 96)
        if not page["masklets"]:
            break
        pages.append(page["masklets"])
        offset += 2
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [m for p in pages for m in p] == written["masklets"]
    default = client.get(f"/jobs/{job_id}/predictions", headers=auth["alice"]).json()
    assert (default["offset"], default["limit"], len(default["masklets"])) == (0, 50, 5)
    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}):
        assert client.get(f"/jobs/{job_id}/predictions", params=bad,
                          headers=auth["alice"]).status_code == 422, bad


def test_overlays_are_listed_and_served_whole_or_by_range(client, auth, finished):
    job_id, run_dir = finished
    r = client.get(f"/jobs/{job_id}/overlays", headers=auth["alice"])
    assert r.status_code == 200, r.text
    listed = r.json()["overlays"]
    assert [o["name"] for o in listed] == ["video_000.mp4", "video_000.png"]
    for overlay, content_type in zip(listed, ("video/mp4", "image/png")):
        on_disk = (run_dir / "overlays" / overlay["name"]).read_bytes()
        assert overlay["url"] == f"/jobs/{job_id}/overlays/{overlay['name']}"
        assert overlay["size_bytes"] == len(on_disk)
        whole = client.get(overlay["url"], headers=auth["alice"])
        assert whole.status_code == 200 and whole.content == on_disk
        assert whole.headers["content-type"] == content_type
        part = client.get(overlay["url"], headers={**auth["alice"], "Range": "bytes=10-99"})
        assert part.status_code == 206 and part.content == on_disk[10:100]
        assert part.headers["content-range"] == f"bytes 10-99/{len(on_disk)}"
        beyond = client.get(overlay["url"], headers={**auth["alice"], "Range": f"bytes={len(on_disk)}-"})
        assert beyond.status_code == 416


def test_names_outside_the_overlays_folder_are_not_served(client, auth, finished):
    job_id, run_dir = finished
    (run_dir / "overlays" / "notes.txt").write_text("not an overlay")
    (run_dir / "overlays" / "leak.png").symlink_to(run_dir / "predictions.json")
    (run_dir / "overlays" / ".partial-video_000.mp4").write_bytes(b"half a video")
    listed = client.get(f"/jobs/{job_id}/overlays", headers=auth["alice"]).json()["overlays"]
    names = [o["name"] for o in listed]
    assert names == ["video_000.mp4", "video_000.png"]
    # (a bare ".." never gets here: the HTTP client resolves it away before sending)
    for name in ("%2E%2E", "..%2Fpredictions.json", "..%2F..%2Fjob-1%2Fjob.json",
                 "notes.txt", "leak.png", ".partial-video_000.mp4", "video_000.mp4%00",
                 "..%5Cpredictions.json", "predictions.json"):
        r = client.get(f"/jobs/{job_id}/overlays/{name}", headers=auth["alice"])
        assert r.status_code in (404, 422), (name, r.status_code)
        assert r.content != (run_dir / "predictions.json").read_bytes()


def test_another_users_job_is_404_and_an_admin_sees_it(client, auth, finished):
    job_id, _ = finished
    for path in ("predictions", "overlays", "overlays/video_000.png"):
        r = client.get(f"/jobs/{job_id}/{path}", headers=auth["bob"])
        assert r.status_code == 404 and r.json()["detail"] == f"job {job_id} not found", path
        assert client.get(f"/jobs/{job_id}/{path}", headers=auth["root"]).status_code == 200, path
        assert client.get(f"/jobs/{job_id}/{path}").status_code == 401


def test_a_job_without_results_is_404_with_the_reason(client, auth):
    queued = submit(client, auth)["id"]
    r = client.get(f"/jobs/{queued}/predictions", headers=auth["alice"])
    assert r.status_code == 404 and "no predictions yet" in r.json()["detail"]
    r = client.get(f"/jobs/{queued}/overlays", headers=auth["alice"])
    assert r.status_code == 404 and "no overlays yet" in r.json()["detail"]
    train = client.post("/jobs", json=train_body(), headers=auth["alice"]).json()["id"]
    r = client.get(f"/jobs/{train}/overlays", headers=auth["alice"])  # drawn at its final evaluation
    assert r.status_code == 404 and "no overlays yet" in r.json()["detail"]
    evaluation = client.post("/jobs", json={"kind": "eval", "config": {
        "data": {"dataset": "synthetic-val"}, "gpus": 0}}, headers=auth["alice"]).json()["id"]
    r = client.get(f"/jobs/{evaluation}/overlays", headers=auth["alice"])  # eval jobs have them
    assert r.status_code == 404 and "no overlays yet" in r.json()["detail"]
    r = client.get(f"/jobs/{evaluation}/predictions", headers=auth["alice"])
    assert r.status_code == 404 and "is an eval job" in r.json()["detail"]
