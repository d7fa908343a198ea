"""The `sam3v` HTTP commands and client.api_client.Sam3vClient against one real running
stack (`sam3v up`: Redis, the API, a Celery worker, torchrun), shared by the whole module.

The tests run in file order and build on each other: the first trains a tiny job that
the download and delete tests use."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from client.api_client import ChecksumError, Sam3vClient
from deploy.redis_server import free_port
from tests.deploy.conftest import StackProcess

ROOT = Path(__file__).resolve().parents[2]
SAM3V = Path(sys.executable).parent / "sam3v"
pytestmark = pytest.mark.timeout(300)
MAX_STREAMS = 2


def tiny_config(max_steps: int = 6) -> dict:
    """examples/train_tiny.json, a few steps, a checkpoint every 3, no validation set."""
    config = json.loads((ROOT / "examples" / "train_tiny.json").read_text())
    config.update(max_steps=max_steps, checkpoint_every=3)
    config["schedule"]["warmup_steps"] = 1
    config["data"].pop("val", None)
    return config


class Ctx:
    stack: StackProcess
    home: str
    tmp: Path
    trained: int | None = None
    other: int | None = None

    def sam3v(self, *args: str, timeout_s: float = 180) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAM3V_")}
        return subprocess.run([str(SAM3V), *args, "--home", self.home], cwd=self.tmp, env=env,
                              text=True, capture_output=True, timeout=timeout_s)

    def client(self, **kwargs) -> Sam3vClient:
        return Sam3vClient(self.stack.url, self.stack.token(), **kwargs)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    c = Ctx()
    c.tmp, c.stack = tmp, StackProcess(tmp / "home", free_port())
    c.home = str(c.stack.layout.root)
    with pytest.MonkeyPatch.context() as env:
        # Two event streams per user, so a test can use them up and see watch fall back to polling.
        env.setenv("SAM3V_SSE_MAX_STREAMS_PER_USER", str(MAX_STREAMS))
        c.stack.start()
    try:
        yield c
        assert c.stack.stop(signal.SIGINT) == 0
    finally:
        c.stack.kill_everything()


def ok(result: subprocess.CompletedProcess, code: int = 0) -> str:
    assert result.returncode == code, f"rc {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def test_submit_then_watch_exits_0_when_the_job_succeeds(ctx):
    config = ctx.tmp / "tiny.json"
    config.write_text(json.dumps(tiny_config(6)))
    out = ok(ctx.sam3v("submit", str(config), "--kind", "train", "--name", "cli-tiny"))
    ctx.trained = job_id = int(out.strip().splitlines()[-1])  # the id is the last line

    watched = ctx.sam3v("watch", str(job_id), timeout_s=240)
    out = ok(watched)
    assert "step 6/6" in out and "checkpoint step_" in out, out
    assert out.strip().splitlines()[-1].startswith(f"job {job_id} succeeded"), out
    assert "loss " in out and "lr " in out, out  # values of the stream's metrics events


def test_jobs_show_and_logs(ctx):
    listed = ok(ctx.sam3v("jobs", "--state", "succeeded", "--kind", "train", "--limit", "5"))
    rows = [line.split() for line in listed.splitlines()[1:]]
    assert [str(ctx.trained), "succeeded", "train", "cli-tiny"] in [r[:4] for r in rows], listed

    shown = json.loads(ok(ctx.sam3v("show", str(ctx.trained))))
    assert shown["id"] == ctx.trained and shown["state"] == "succeeded"

    log = ok(ctx.sam3v("logs", str(ctx.trained)))
    assert "step 6/6" in log, log[-2000:]
    followed = ok(ctx.sam3v("logs", str(ctx.trained), "-f"))  # finished: -f ends at once
    assert followed == log

    with ctx.client() as client:
        series = {s["name"]: s for s in client.metrics(ctx.trained)["series"]}
        assert "loss" in series and series["loss"]["total_points"] >= 1
        only = client.metrics(ctx.trained, names=["loss"], max_points=2)["series"]
        assert [s["name"] for s in only] == ["loss"] and len(only[0]["points"]) <= 2
        window = client.logs(ctx.trained, offset=10, limit=20)
        assert window["text"] == log.encode()[10:30].decode(errors="replace")
        assert window["next_offset"] == 30 and not window["eof"]


def test_show_of_a_missing_job_exits_2_with_the_servers_message(ctx):
    result = ctx.sam3v("show", "999999")
    assert result.returncode == 2 and result.stdout == ""
    assert "HTTP 404" in result.stderr and "job 999999 not found" in result.stderr
    assert "Traceback" not in result.stderr


def _latest(ctx) -> dict:
    with ctx.client() as client:
        return [c for c in client.checkpoints(ctx.trained) if c["available"]][-1]


def test_download_latest_writes_the_servers_sha256(ctx):
    latest = _latest(ctx)
    target = ctx.tmp / "dl"
    target.mkdir()
    out = ok(ctx.sam3v("download", str(ctx.trained), "--checkpoint", "latest", "-o", str(target)))
    written = target / latest["name"]
    assert hashlib.sha256(written.read_bytes()).hexdigest() == latest["sha256"]
    assert latest["sha256"] in out


class Recording(httpx.HTTPTransport):
    """The real transport, noting each request's headers and each answer's status."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, dict, int, dict]] = []

    def handle_request(self, request):
        response = super().handle_request(request)
        self.seen.append((request.url.path, dict(request.headers), response.status_code,
                          dict(response.headers)))
        return response


def test_an_interrupted_download_resumes_with_range_and_verifies(ctx):
    latest = _latest(ctx)
    whole = (ctx.stack.layout.runs / f"job-{ctx.trained}" / "checkpoints" / latest["name"]).read_bytes()
    assert len(whole) == latest["size_bytes"] > 1000
    part = ctx.tmp / "partial.pt"
    cut = len(whole) // 3
    part.write_bytes(whole[:cut])

    transport = Recording()
    with ctx.client(transport=transport) as client:
        assert client.download_checkpoint(ctx.trained, latest["name"], part) == part
    assert part.read_bytes() == whole
    path, headers, status, answer = transport.seen[-1]
    assert path.endswith(f"/checkpoints/{latest['name']}")
    assert headers["range"] == f"bytes={cut}-" and status == 206
    assert int(answer["content-length"]) == len(whole) - cut  # only the rest was sent

    # The CLI resumes the same way; a whole file is left as it is, and verified.
    part.write_bytes(whole[:cut])
    ok(ctx.sam3v("download", str(ctx.trained), "--checkpoint", latest["name"], "-o", str(part)))
    assert part.read_bytes() == whole
    ok(ctx.sam3v("download", str(ctx.trained), "--checkpoint", latest["name"], "-o", str(part)))
    assert part.read_bytes() == whole

    # A partial file that is not a prefix of the checkpoint fails verification: deleted.
    part.write_bytes(b"x" * cut)
    with ctx.client() as client, pytest.raises(ChecksumError, match="sha256"):
        client.download_checkpoint(ctx.trained, latest["name"], part)
    assert not part.exists()
    part.write_bytes(b"x" * cut)
    bad = ctx.sam3v("download", str(ctx.trained), "--checkpoint", latest["name"], "-o", str(part))
    assert bad.returncode == 3 and "sha256" in bad.stderr and "Traceback" not in bad.stderr
    assert not part.exists()


def test_cancel_then_watch_exits_1_and_retry_requeues(ctx):
    config = ctx.tmp / "long.json"
    config.write_text(json.dumps(tiny_config(500)))
    ctx.other = job_id = int(ok(ctx.sam3v("submit", str(config))).strip().splitlines()[-1])
    cancelled = ok(ctx.sam3v("cancel", str(job_id)))
    assert f"job {job_id} cancel" in cancelled, cancelled  # cancelled (queued) or cancelling

    watched = ctx.sam3v("watch", str(job_id), timeout_s=120)
    assert watched.returncode == 1, watched.stdout + watched.stderr
    assert f"job {job_id} cancelled" in watched.stdout.strip().splitlines()[-1]
    assert "polling instead" not in watched.stderr
    with ctx.client() as client:
        assert client.job(job_id)["state"] == "cancelled"

    retried = ok(ctx.sam3v("retry", str(job_id)))
    assert f"job {job_id} queued" in retried or f"job {job_id} running" in retried, retried
    with ctx.client() as client:
        assert client.job(job_id)["state"] in ("queued", "running", "cancelling")

    # Every event stream of the user in use: watch falls back to polling, and still ends.
    held = [httpx.Client(base_url=ctx.stack.url, timeout=30,
                         headers={"Authorization": f"Bearer {ctx.stack.token()}"})
            for _ in range(MAX_STREAMS)]
    streams = [h.stream("GET", f"/jobs/{job_id}/events") for h in held]
    try:
        for stream in streams:
            assert stream.__enter__().status_code == 200
        watcher = subprocess.Popen(
            [str(SAM3V), "watch", str(job_id), "--poll", "0.5", "--home", ctx.home], cwd=ctx.tmp,
            env={k: v for k, v in os.environ.items() if not k.startswith("SAM3V_")},
            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        ok(ctx.sam3v("cancel", str(job_id)))
        out, err = watcher.communicate(timeout=120)
    finally:
        for h in held:
            h.close()
    assert watcher.returncode == 1, out + err
    assert "HTTP 429" in err and "polling instead" in err and "Traceback" not in err, err
    assert out.strip().splitlines()[-1].startswith(f"job {job_id} cancelled"), out

    # A finished job cannot be cancelled: 409, exit 2, the server's reason on stderr.
    refused = ctx.sam3v("cancel", str(ctx.trained))
    assert refused.returncode == 2 and "HTTP 409" in refused.stderr and "nothing to cancel" in refused.stderr


def test_delete_removes_a_finished_job(ctx):
    for job_id in (ctx.trained, ctx.other):
        assert ok(ctx.sam3v("delete", str(job_id))).strip() == f"deleted job {job_id}"
        gone = ctx.sam3v("show", str(job_id))
        assert gone.returncode == 2 and f"job {job_id} not found" in gone.stderr
    assert not (ctx.stack.layout.runs / f"job-{ctx.trained}").exists()
    listed = ok(ctx.sam3v("jobs"))
    assert len(listed.strip().splitlines()) == 1  # the header only


def test_client_pages_through_jobs_and_reads_events_health_and_metrics(ctx):
    with ctx.client() as client:
        assert client.health() == {"status": "ok"}
        assert client.ready() == {"database": "ok", "broker": "ok"}
        ids = [client.submit("train", tiny_config(500), name=f"page-{i}")["id"] for i in range(3)]
        # The newest one waits behind the others: no attempt yet, so no log yet (not an error).
        if client.job(ids[-1])["attempt"] == 0:
            early = ctx.sam3v("logs", str(ids[-1]))
            assert early.returncode == 0 and "no log yet" in early.stderr, early.stderr
        for job_id in ids:
            client.cancel(job_id)
        for job_id in ids:
            client.wait(job_id, timeout_s=60, poll_s=0.5)
        assert [j["id"] for j in client.iter_jobs(name=None, page_size=2)][:3] == ids[::-1]
        assert len(client.jobs(limit=2)) == 2
        events = list(client.events(ids[0]))
        assert events[0].event == "state" and events[-1].data["state"] == "cancelled"
        resumed = list(client.events(ids[0], last_event_id=events[0].id))
        assert [e.id for e in resumed] == [e.id for e in events[1:]]
        assert "sam3v" in client.prometheus()
        # An Idempotency-Key replays the first job instead of creating a second one.
        first = client.submit("train", tiny_config(500), idempotency_key="k-1")
        again = client.submit("train", tiny_config(500), idempotency_key="k-1")
        assert again["id"] == first["id"]
        client.cancel(first["id"])
        client.wait(first["id"], timeout_s=60, poll_s=0.5)


class FlakyConnect(httpx.HTTPTransport):
    """The real transport, refusing the first `failures` requests as if the API were down."""

    def __init__(self, failures: int):
        super().__init__()
        self.failures, self.calls = failures, 0

    def handle_request(self, request):
        self.calls += 1
        if self.calls <= self.failures:
            raise httpx.ConnectError("connection refused (test)", request=request)
        return super().handle_request(request)


def test_gets_are_retried_after_connection_errors(ctx, monkeypatch):
    from client import api_client

    monkeypatch.setattr(api_client, "RETRY_BACKOFF_S", 0.01)
    flaky = FlakyConnect(failures=2)
    with ctx.client(transport=flaky) as client:
        assert client.health() == {"status": "ok"} and flaky.calls == 3
    down = FlakyConnect(failures=10)
    with ctx.client(transport=down, retries=2) as client, pytest.raises(httpx.ConnectError):
        client.job(1)
    assert down.calls == 3


def test_parse_sse_reads_ids_kinds_data_and_skips_comments():
    from client.api_client import parse_sse

    lines = [": keep-alive", "", "id: 7", "event: state", 'data: {"state": "running"}', "",
             "id: 8", "event: note", "data: two", "data: lines", "", "data: no id or kind", ""]
    events = list(parse_sse(lines))
    assert [(e.id, e.event, e.data) for e in events] == [
        (7, "state", {"state": "running"}), (8, "note", "two\nlines"), (8, "message", "no id or kind")]
