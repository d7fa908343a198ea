"""Metrics, logs, SSE events and checkpoint downloads, with a simulated worker: the real
store functions plus files written into the run dir."""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time

import jobstore
from api.routes.metrics import downsample
from sam3_video.run_layout import job_dir


def _sse_events(text: str) -> list[dict]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if fields:
            events.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
    return events


def test_downsample_keeps_spikes_and_bounds_points():
    points = [(s, 1.0, float(s)) for s in range(1000)]
    points[537] = (537, 50.0, 537.0)   # a spike every-Nth sampling would miss
    points[700] = (700, -3.0, 700.0)
    out = downsample(points, 100)
    assert len(out) <= 100
    values = [v for _, v, _ in out]
    assert 50.0 in values and -3.0 in values
    assert [s for s, _, _ in out] == sorted(s for s, _, _ in out)
    assert downsample(points[:10], 100) == points[:10]


def test_metrics_names_since_step_and_max_points(client, auth, make_job, engine):
    job = make_job()
    jobstore.claim_job(job["id"], "w", 60, engine=engine)
    rows = [("loss", s, 10.0 - s / 100, 1000.0 + s) for s in range(500)]
    rows += [("lr", s, 1e-4, 1000.0 + s) for s in range(500)]
    rows.append(("loss", 250, float("nan"), 1250.0))  # a re-trained step overwrites; NaN -> null
    jobstore.add_metrics(job["id"], 1, rows, engine=engine)
    h = auth["alice"]
    body = client.get(f"/jobs/{job['id']}/metrics", headers=h).json()
    assert {s["name"]: s["total_points"] for s in body["series"]} == {"loss": 500, "lr": 500}
    loss = client.get(f"/jobs/{job['id']}/metrics?names=loss&since_step=240&max_points=1000",
                      headers=h).json()["series"]
    assert [s["name"] for s in loss] == ["loss"]
    points = loss[0]["points"]
    assert points[0]["step"] == 240 and len(points) == 260
    assert points[10] == {"step": 250, "value": None, "time": 1250.0}
    small = client.get(f"/jobs/{job['id']}/metrics?names=loss,lr&max_points=20", headers=h).json()
    assert all(len(s["points"]) <= 20 and s["total_points"] == 500 for s in small["series"])
    loss_small = next(s for s in small["series"] if s["name"] == "loss")["points"]
    assert loss_small[0]["value"] == 10.0 and loss_small[-1]["step"] == 499  # extremes kept
    r = client.get(f"/jobs/{job['id']}/metrics?max_points=1", headers=h)
    assert r.status_code == 422 and "max_points" in r.json()["detail"]
    assert client.get("/jobs/999/metrics", headers=h).status_code == 404


def test_logs_by_attempt_and_offset(client, auth, make_job, engine, settings):
    job = make_job()
    h = auth["alice"]
    r = client.get(f"/jobs/{job['id']}/logs", headers=h)
    assert r.status_code == 404 and "no attempt" in r.json()["detail"]
    claimed = jobstore.claim_job(job["id"], "w", 60, engine=engine)
    assert client.get(f"/jobs/{job['id']}/logs", headers=h).json()["size"] == 0  # not written yet
    logs = os.path.join(job_dir(settings.runs_root, claimed.id), "logs")
    os.makedirs(logs)
    with open(os.path.join(logs, "attempt-1.log"), "w") as f:
        f.write("line one\nline two ünïcode\n")
    size = os.path.getsize(os.path.join(logs, "attempt-1.log"))
    first = client.get(f"/jobs/{job['id']}/logs?limit=5", headers=h).json()
    assert first == {"attempt": 1, "offset": 0, "next_offset": 5, "size": size, "eof": False, "text": "line "}
    rest = client.get(f"/jobs/{job['id']}/logs?offset=5", headers=h).json()
    assert rest["text"] == "one\nline two ünïcode\n" and rest["eof"] and rest["next_offset"] == size
    r = client.get(f"/jobs/{job['id']}/logs?offset={size + 1}", headers=h)
    assert r.status_code == 416 and "beyond" in r.json()["detail"]
    assert client.get(f"/jobs/{job['id']}/logs?attempt=2", headers=h).status_code == 404


def test_events_stream_replays_and_resumes_with_last_event_id(client, auth, make_job, engine):
    job = make_job()
    jid, h = job["id"], auth["alice"]
    jobstore.claim_job(jid, "w", 60, engine=engine)
    jobstore.record_progress(jid, 3, 20, 5.0, engine=engine)
    jobstore.add_metrics(jid, 1, [("loss", 3, 0.5, time.time())], engine=engine)

    def worker_finishes_later():
        time.sleep(0.3)
        jobstore.add_checkpoint(jid, "step_0000003.pt", 3, 10, "ab" * 32, "/nowhere", engine=engine)
        jobstore.finish_job(jid, 1, "succeeded", None, None, engine=engine)
    threading.Thread(target=worker_finishes_later).start()
    # The stream stays open while the job runs and ends once it is finished.
    with client.stream("GET", f"/jobs/{jid}/events", headers=h) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    events = _sse_events(text)
    assert [e["event"] for e in events] == ["state", "state", "progress", "metrics", "checkpoint", "state"]
    assert [e["data"].get("state") for e in events if e["event"] == "state"] == ["queued", "running", "succeeded"]
    assert events[2]["data"]["step"] == 3 and events[4]["data"]["name"] == "step_0000003.pt"
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)
    # Reconnect after the 3rd event: exactly the rest, nothing twice.
    resumed = client.get(f"/jobs/{jid}/events", headers={**h, "Last-Event-ID": str(ids[2])})
    assert [e["id"] for e in _sse_events(resumed.text)] == ids[3:]
    assert [e["id"] for e in _sse_events(client.get(f"/jobs/{jid}/events?after={ids[4]}", headers=h).text)] == ids[5:]
    r = client.get(f"/jobs/{jid}/events", headers={**h, "Last-Event-ID": "abc"})
    assert r.status_code == 400 and "Last-Event-ID" in r.json()["detail"]


def test_checkpoint_list_and_ranged_download(client, auth, make_job, engine, settings):
    job = make_job()
    jid, h = job["id"], auth["alice"]
    claimed = jobstore.claim_job(jid, "w", 60, engine=engine)
    ckpt_dir = os.path.join(job_dir(settings.runs_root, claimed.id), "checkpoints")
    os.makedirs(ckpt_dir)
    payload = os.urandom(300_001)
    path = os.path.join(ckpt_dir, "step_0000005.pt")
    with open(path, "wb") as f:
        f.write(payload)
    digest = hashlib.sha256(payload).hexdigest()
    jobstore.add_checkpoint(jid, "step_0000005.pt", 5, len(payload), digest, path, engine=engine)
    jobstore.add_checkpoint(jid, "step_0000002.pt", 2, 7, "0" * 64, os.path.join(ckpt_dir, "step_0000002.pt"), engine=engine)
    listing = client.get(f"/jobs/{jid}/checkpoints", headers=h).json()["checkpoints"]
    assert [(c["name"], c["step"], c["available"]) for c in listing] == [
        ("step_0000002.pt", 2, False), ("step_0000005.pt", 5, True)]
    assert listing[1]["sha256"] == digest and listing[1]["size_bytes"] == len(payload)

    url = f"/jobs/{jid}/checkpoints/step_0000005.pt"
    whole = client.get(url, headers=h)
    assert whole.status_code == 200 and whole.content == payload
    assert whole.headers["x-checksum-sha256"] == digest and whole.headers["etag"] == f'"{digest}"'
    assert whole.headers["accept-ranges"] == "bytes"
    # Reassemble from 64 KiB ranges: same sha256.
    parts, start = [], 0
    while start < len(payload):
        r = client.get(url, headers={**h, "Range": f"bytes={start}-{start + 65535}"})
        assert r.status_code == 206
        assert r.headers["content-range"] == f"bytes {start}-{min(start + 65535, len(payload) - 1)}/{len(payload)}"
        parts.append(r.content)
        start += 65536
    assert hashlib.sha256(b"".join(parts)).hexdigest() == digest
    tail = client.get(url, headers={**h, "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == payload[-10:]
    for bad in (f"bytes={len(payload)}-", "bytes=5-2", "lines=0-1", "bytes=abc"):
        r = client.get(url, headers={**h, "Range": bad})
        assert r.status_code == 416, bad
        assert "Range header" in r.json()["detail"] and r.headers["content-range"] == f"bytes */{len(payload)}"
    r = client.get(f"/jobs/{jid}/checkpoints/step_0000002.pt", headers=h)
    assert r.status_code == 404 and "pruned" in r.json()["detail"]
    r = client.get(f"/jobs/{jid}/checkpoints/..%2F..%2Fetc%2Fpasswd", headers=h)
    assert r.status_code == 404
