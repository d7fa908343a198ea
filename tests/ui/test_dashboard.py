"""The /ui dashboard in a real headless Chromium (Debian's, driven by playwright-core from
npm: deploy/setup.sh installs both) against the real local stack (`sam3v up`): sign in,
submit from the form, follow a run's loss curve live, cancel, see field errors, download a
checkpoint, preview and upload datasets, view a predict job's overlays. The browser part is
tests/ui/dashboard.mjs; it reports what it saw as JSON, checked here and against the API."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("SAM3V_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("SAM3V_UI_ARTIFACTS", ROOT / "tests" / "ui" / "artifacts"))


def require(ok: bool, message: str) -> None:
    """A missing browser or npm package: a skip on a developer's machine, a failure under CI
    (where deploy/setup.sh has installed them, so it is a broken install step)."""
    if ok:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message}: run deploy/setup.sh", pytrace=False)
    pytest.skip(f"{message}: run deploy/setup.sh")


def train_config(max_steps: int = 6) -> dict:
    """examples/train_tiny.json, a few steps long: enough metric events to watch the curve
    grow, a checkpoint to download, and no validation set (its evaluations cost minutes on
    a busy 2-core machine; the trainer's tests cover them)."""
    config = json.loads((ROOT / "examples" / "train_tiny.json").read_text())
    config.update(max_steps=max_steps, checkpoint_every=3)
    config["schedule"]["warmup_steps"] = 1
    config["data"].pop("val", None)
    return config


def series_params(request: dict) -> dict:
    return {k: v[0] for k, v in parse_qs(urlparse(request["url"]).query).items()}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_dashboard_in_a_real_browser(make_stack, tmp_path):
    node = shutil.which("node")
    require(node is not None, "node is not installed")
    require(Path(CHROMIUM).is_file(), f"chromium is not installed ({CHROMIUM})")
    require((ROOT / "node_modules" / "playwright-core" / "package.json").is_file(),
            "node_modules/playwright-core is missing (npm ci)")

    stack = make_stack()
    stack.start()
    token = stack.token()
    (tmp_path / "train.json").write_text(json.dumps(train_config(), indent=2))
    shutil.copy(ROOT / "examples" / "predict_tiny.json", tmp_path / "predict.json")
    archive = tmp_path / "ui-upload.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(stack.layout.data / "synthetic-val", arcname="synthetic-val")

    env = {**os.environ, "BASE_URL": stack.url, "TOKEN": token, "ARTIFACTS": str(ARTIFACTS),
           "TRAIN_CONFIG": str(tmp_path / "train.json"), "PREDICT_CONFIG": str(tmp_path / "predict.json"),
           "UPLOAD_ARCHIVE": str(archive), "CHROMIUM": CHROMIUM}
    try:
        done = subprocess.run([node, str(ROOT / "tests" / "ui" / "dashboard.mjs")], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=540)
        with stack.client() as client:
            jobs = {j["id"]: j for j in client.get("/jobs").raise_for_status().json()["items"]}
            loss = {j: client.get(f"/jobs/{j}/metrics", params={"names": "loss"}).raise_for_status().json()
                    for j in jobs}
    finally:
        stack.stop()
    assert done.returncode == 0, (f"dashboard.mjs failed (screenshots in {ARTIFACTS}):\n"
                                  f"{done.stderr[-6000:]}\n{done.stdout[-3000:]}\n{stack.output_text()}")
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    # Sign-in: / leads to the page; a wrong token is a clear 401; the right one is kept.
    assert seen["landedAt"] == "/ui/"
    assert "401" in seen["badTokenMessage"] and "token rejected" in seen["badTokenMessage"]
    assert seen["storedToken"] is True and seen["tokenAfterSignOut"] is None

    # The server's field error, next to the form, its field highlighted; nothing submitted.
    assert seen["stillOnForm"]
    assert any(e.startswith("config.max_steps: ") for e in seen["fieldErrors"]), seen["fieldErrors"]
    assert "config.max_steps" in seen["highlightedFields"]

    train, predict, cancelled = seen["trainJobId"], seen["predictJobId"], seen["cancelJobId"]
    assert len(jobs) == 3, "the bad submit created a job"
    assert jobs[train]["state"] == "succeeded" and jobs[train]["name"] == "ui-train"
    assert jobs[cancelled]["state"] == "cancelled" and jobs[predict]["state"] == "succeeded"
    assert {int(k) for k in seen["listedStates"]} == {train, predict, cancelled}
    assert "ui-train" in seen["trainRowText"] and "/6" in seen["trainRowText"]
    assert seen["cancelledFilterIds"] == [cancelled]
    assert seen["predictFilterIds"] == [predict]

    # The live curve: points were added while the page was open and the job running, and
    # the appended series ends equal to the server's (nothing lost or doubled).
    points = seen["pointsSeen"]
    assert len(points) >= 2 and points[-1] > points[0] and points == sorted(points), points
    assert seen["stateWhenGrown"] == "running"
    assert seen["finalPoints"] == loss[train]["series"][0]["total_points"] == 6
    # ...by fetching only the new points: one full load per visit of the page (two), every
    # other request from a step after the first.
    metric_requests = [series_params(r) for r in seen["requests"] if f"/jobs/{train}/metrics" in r["url"]]
    full = [p for p in metric_requests if int(p.get("since_step", 0)) == 0]
    assert 1 <= len(full) <= 2, metric_requests
    assert len(metric_requests) > len(full), metric_requests

    # The token goes in the header of every API call (events included), never in a URL.
    page_paths = {"/", "/ui", "/openapi.json"}  # the page itself and the public schema
    api_calls = [r for r in seen["requests"] if not r["url"].startswith(("blob:", "data:"))
                 and urlparse(r["url"]).path not in page_paths
                 and not urlparse(r["url"]).path.startswith("/ui/")]
    assert all(token not in r["url"] for r in seen["requests"])
    events = [r for r in api_calls if r["url"].endswith(f"/jobs/{train}/events")]
    assert events and all(r["auth"] == f"Bearer {token}" for r in events)
    assert all(r["auth"] in (f"Bearer {token}", "Bearer sam3v_not-a-real-token") for r in api_calls), \
        [r for r in api_calls if r["auth"] is None]

    assert seen["download"]["name"].startswith("step_") and seen["download"]["bytes"] > 1000
    assert seen["logTail"].strip()
    assert set(seen["previews"]) == {"synthetic", "synthetic-val", "ui-upload"}
    assert all(width > 0 for width in seen["previews"].values()), seen["previews"]
    assert seen["overlayImages"] and all(i["width"] > 0 and i["src"].startswith("blob:")
                                         for i in seen["overlayImages"])
    assert seen["overlayVideos"] and all(v.startswith("blob:") for v in seen["overlayVideos"])
    # The refused token and the bad submit log their HTTP status; nothing else may fail.
    assert [e for e in seen["consoleErrors"] if "Failed to load resource" not in e] == []
    assert (ARTIFACTS / "05-job-live.png").is_file()
