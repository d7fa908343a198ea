"""Dataset uploads (real tar/zip archives), their safe extraction, the background
validation registry, and POST /jobs on uploaded datasets."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import jobstore
from api.datasets import CACHE_DIR, dataset_registry
from api.main import create_app
from jobstore.tokens import create_token
from sam3_video.data import load_native, write_synthetic
from tests.api.conftest import train_body
from tests.support.api_server import uvicorn_app

LIMIT = 1024 * 1024  # the test server's upload limits: archive and extracted bytes


@pytest.fixture
def settings(settings):
    """Small upload limits; POST /jobs does not wait for a first validation (409 at once)."""
    return settings.model_copy(update={
        "upload_max_bytes": LIMIT, "upload_max_extracted_bytes": LIMIT, "upload_max_files": 60,
        "dataset_validation_wait_s": 0.0})


def _tree(src: Path) -> list[tuple[str, Path]]:
    return [(p.relative_to(src).as_posix(), p) for p in sorted(src.rglob("*"))]


def tar_bytes(src: Path, prefix: str = "", mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for rel, path in _tree(src):
            tar.add(path, arcname=prefix + rel, recursive=False)
    return buf.getvalue()


def zip_bytes(src: Path, prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, path in _tree(src):
            zf.write(path, prefix + rel)
    return buf.getvalue()


def tar_with(add) -> bytes:
    """A tar.gz holding a valid dataset's annotations.json plus what `add(tar)` adds."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b'{"videos": [], "annotations": [], "categories": []}'
        info = tarfile.TarInfo("annotations.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        add(tar)
    return buf.getvalue()


def _member(tar, name: str, data: bytes = b"", **fields) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if data else None)


@pytest.fixture
def source(tmp_path) -> Path:
    """A small valid dataset outside DATA_ROOT, to be archived and uploaded."""
    src = tmp_path / "src"
    write_synthetic(src, videos=3, frames=4, seed=7, height=96, width=128)
    return src


def wait_state(client, headers, name: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/datasets/{name}", headers=headers)
        assert r.status_code == 200, r.text
        if r.json()["state"] != "validating":
            return r.json()
        time.sleep(0.05)
    raise AssertionError(f"dataset {name} still validating after {timeout} s")


def leftovers(settings) -> list[str]:
    """Everything under DATA_ROOT/uploads except the (empty) temp folder itself."""
    uploads = settings.data_root / "uploads"
    tmp = uploads / ".tmp"
    return sorted(str(p.relative_to(uploads)) for p in uploads.rglob("*") if p != tmp) \
        if uploads.exists() else []


def test_tar_gz_upload_validates_and_a_job_trains_on_it(client, auth, settings, source):
    h = auth["alice"]
    archive = tar_bytes(source, prefix="mine/")
    assert len(archive) > settings.max_body_bytes  # the JSON body limit does not apply
    r = client.put("/datasets/mine", content=archive, headers=h)
    assert r.status_code == 202, r.text
    assert r.json()["state"] in ("validating", "valid")
    body = wait_state(client, h, "mine")
    expected = load_native(source)
    assert body["state"] == "valid" and body["problems"] == [] and body["owner"] == "alice"
    assert (body["videos"], body["frames"], body["objects"], body["phrases"]) == (
        3, 12, len(expected.tracks), len(expected.categories))
    assert body["path"].startswith("uploads/") and body["path"].endswith("/mine")
    assert (settings.data_root / body["path"] / "annotations.json").read_bytes() == \
        (source / "annotations.json").read_bytes()
    assert not list((settings.data_root / "uploads" / ".tmp").iterdir())

    job = client.post("/jobs", json=train_body(config={"data": {"train": body["path"]},
                                                       "max_steps": 1, "gpus": 0}), headers=h)
    assert job.status_code == 201, job.text
    listed = client.get("/datasets", headers=h).json()["items"]
    by_name = {d["name"]: d for d in listed}
    assert by_name["mine"]["owner"] == "alice"
    assert by_name["synthetic"]["owner"] == "shared" and by_name["synthetic"]["path"] == "synthetic"
    assert "uploads" not in by_name

    # Same name again: 409 unless ?replace=true; the replacement is a new version.
    again = client.put("/datasets/mine", content=tar_bytes(source), headers=h)
    assert again.status_code == 409 and "replace=true" in again.json()["detail"]
    write_synthetic(source, videos=2, frames=2, seed=8, height=96, width=128)
    replaced = client.put("/datasets/mine?replace=true", content=tar_bytes(source), headers=h)
    assert replaced.status_code == 202, replaced.text
    after = wait_state(client, h, "mine")
    assert after["state"] == "valid" and after["version"] != body["version"]
    assert json.loads((settings.data_root / after["path"] / "annotations.json").read_text()) == \
        json.loads((source / "annotations.json").read_text())
    assert not list((settings.data_root / "uploads" / ".tmp").iterdir())


def test_zip_upload_at_the_archive_root(client, auth, settings, source):
    h = auth["alice"]
    # What a killed server left in the temp area a day ago is swept by the next upload.
    stale = settings.data_root / "uploads" / ".tmp" / "dead.part"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half an archive")
    os.utime(stale, (time.time() - 2 * 86400,) * 2)
    r = client.put("/datasets/zipped", content=zip_bytes(source), headers=h)
    assert r.status_code == 202, r.text
    body = wait_state(client, h, "zipped")
    assert body["state"] == "valid" and body["videos"] == 3 and body["frames"] == 12
    assert not stale.exists()


def _bomb_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("annotations.json", "{}")
        zf.writestr("JPEGImages/zeros.bin", b"\0" * (8 * LIMIT))  # 8 MiB from a few KiB
    return buf.getvalue()


def _zip_symlink() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("annotations.json", "{}")
        info = zipfile.ZipInfo("JPEGImages/link")
        info.create_system = 3
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


REFUSED = {
    "dot-dot": (lambda: tar_with(lambda t: _member(t, "../x", b"escape")), 422, "'../x'"),
    "nested dot-dot": (lambda: tar_with(lambda t: _member(t, "JPEGImages/../../x", b"e")), 422, "'..'"),
    "absolute": (lambda: tar_with(lambda t: _member(t, "/tmp/abs", b"abs")), 422, "absolute"),
    "symlink": (lambda: tar_with(lambda t: _member(t, "JPEGImages/l", type=tarfile.SYMTYPE,
                                                   linkname="/etc/passwd")), 422, "links"),
    "hardlink": (lambda: tar_with(lambda t: _member(t, "JPEGImages/h", type=tarfile.LNKTYPE,
                                                    linkname="annotations.json")), 422, "links"),
    "fifo": (lambda: tar_with(lambda t: _member(t, "JPEGImages/f", type=tarfile.FIFOTYPE)),
             422, "fifo"),
    "device": (lambda: tar_with(lambda t: _member(t, "JPEGImages/d", type=tarfile.CHRTYPE)),
               422, "device"),
    "oversized member": (lambda: tar_with(lambda t: _member(t, "JPEGImages/big.bin",
                                                            b"\0" * (2 * LIMIT))),
                         413, "SAM3V_UPLOAD_MAX_EXTRACTED_BYTES"),
    "too many files": (lambda: tar_with(lambda t: [_member(t, f"JPEGImages/{i}.jpg", b"x")
                                                   for i in range(80)]),
                       413, "SAM3V_UPLOAD_MAX_FILES"),
    "zip bomb": (_bomb_zip, 413, "'JPEGImages/zeros.bin'"),
    "zip symlink": (_zip_symlink, 422, "links"),
    "not an archive": (lambda: b"hello, this is no archive" * 10, 422, "not a tar"),
    "no annotations": (lambda: zip_bytes_of({"a/x.txt": b"1", "b/y.txt": b"2"}), 422,
                       "no annotations.json"),
}


def zip_bytes_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unsafe_archives_are_refused_and_leave_nothing(client, auth, settings, case, tmp_path):
    make, status, words = REFUSED[case]
    r = client.put("/datasets/bad", content=make(), headers=auth["alice"])
    assert r.status_code == status, r.text
    assert words in r.json()["detail"], r.json()
    assert leftovers(settings) == []
    assert not (tmp_path / "x").exists() and not Path("/tmp/abs").exists()
    assert client.get("/datasets/bad", headers=auth["alice"]).status_code == 404


def test_body_over_the_upload_limit_is_413_with_nothing_left(client, auth, settings):
    blob = os.urandom(LIMIT + 1)

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for i in range(0, len(blob), 64 * 1024):
            yield blob[i:i + 64 * 1024]
    r = client.put("/datasets/huge", content=chunks(), headers=auth["alice"])
    assert r.status_code == 413 and "SAM3V_UPLOAD_MAX_BYTES" in r.json()["detail"], r.text
    r = client.put("/datasets/huge", content=blob, headers=auth["alice"])  # Content-Length
    assert r.status_code == 413
    assert leftovers(settings) == []
    # The JSON body limit (64 KiB here) does not apply to uploads; it still does elsewhere.
    assert client.post("/jobs", content=b"{" + b" " * (70 * 1024) + b"}",
                       headers={**auth["alice"], "Content-Type": "application/json"}).status_code == 413


def test_bad_names_and_shared_names(client, auth, source):
    h = auth["alice"]
    for bad in (".hidden", "a%20b", "-x", "x" * 101):
        r = client.put(f"/datasets/{bad}", content=tar_bytes(source), headers=h)
        assert r.status_code in (404, 422), (bad, r.text)
        if r.status_code == 422:
            assert "name" in r.json()["detail"]
    r = client.put("/datasets/synthetic", content=tar_bytes(source), headers=h)
    assert r.status_code == 409 and "shared" in r.json()["detail"]
    r = client.delete("/datasets/synthetic", headers=h)
    assert r.status_code == 403 and "shared" in r.json()["detail"]
    assert client.get("/datasets/nope", headers=h).status_code == 404


def test_invalid_upload_ends_invalid_and_jobs_on_it_are_422(client, auth, source):
    h = auth["alice"]
    data = json.loads((source / "annotations.json").read_text())
    missing = data["videos"][0]["file_names"][2]
    (source / "JPEGImages" / missing).unlink()
    r = client.put("/datasets/broken", content=tar_bytes(source), headers=h)
    assert r.status_code == 202, r.text
    body = wait_state(client, h, "broken")
    assert body["state"] == "invalid" and body["videos"] is None
    assert any(missing in p for p in body["problems"]), body
    job = client.post("/jobs", json=train_body(config={"data": {"train": body["path"]},
                                                       "max_steps": 1, "gpus": 0}), headers=h)
    assert job.status_code == 422, job.text
    assert any(e.startswith(f"config.data.train: {body['path']}/") and missing in e
               for e in job.json()["errors"]), job.json()


def test_another_users_upload_is_invisible(client, auth, source):
    r = client.put("/datasets/private", content=tar_bytes(source), headers=auth["alice"])
    assert r.status_code == 202
    path = wait_state(client, auth["alice"], "private")["path"]
    bob = auth["bob"]
    assert "private" not in {d["name"] for d in client.get("/datasets", headers=bob).json()["items"]}
    assert client.get("/datasets/private", headers=bob).status_code == 404
    assert client.get("/datasets/private/preview/1.png", headers=bob).status_code == 404
    assert client.delete("/datasets/private", headers=bob).status_code == 404
    for field in ("train", "val"):
        data = {"train": "synthetic", field: path} if field == "val" else {"train": path}
        job = client.post("/jobs", json=train_body(config={"data": data, "max_steps": 1, "gpus": 0}),
                          headers=bob)
        assert job.status_code == 422, job.text
        assert job.json()["errors"] == [
            f"config.data.{field}: dataset directory {path!r} not found under DATA_ROOT"]
    # The upload area itself and its temp folder are nobody's dataset.
    for other in ("uploads", "uploads/.tmp"):
        job = client.post("/jobs", json=train_body(config={"data": {"train": other},
                                                           "max_steps": 1, "gpus": 0}),
                          headers=auth["alice"])
        assert job.status_code == 422 and "not found" in job.json()["detail"]
    # Bob may upload the same name: his own namespace.
    assert client.put("/datasets/private", content=tar_bytes(source), headers=bob).status_code == 202
    assert wait_state(client, bob, "private")["path"] != path


def test_owner_deletes_an_upload(client, auth, settings, source):
    h = auth["alice"]
    assert client.put("/datasets/gone", content=zip_bytes(source), headers=h).status_code == 202
    path = wait_state(client, h, "gone")["path"]
    assert client.delete("/datasets/gone", headers=h).status_code == 204
    assert not (settings.data_root / path).exists()
    assert client.get("/datasets/gone", headers=h).status_code == 404
    assert client.delete("/datasets/gone", headers=h).status_code == 404
    assert not list((settings.data_root / "uploads" / ".tmp").iterdir())


def test_preview_draws_a_contact_sheet(client, auth, source):
    h = auth["alice"]
    assert client.put("/datasets/seen", content=tar_bytes(source), headers=h).status_code == 202
    wait_state(client, h, "seen")
    r = client.get("/datasets/seen/preview/1.png", headers=h)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(r.content))
    assert image.format == "PNG" and image.width >= 128 and image.height >= 96
    assert client.get("/datasets/seen/preview/99.png", headers=h).status_code == 404
    assert client.get("/datasets/synthetic/preview/1.png", headers=h).status_code == 200


def test_job_on_a_dataset_still_validating_is_409_with_retry_after(client, auth, settings):
    write_synthetic(settings.data_root / "big", videos=150, frames=4, seed=3, height=32, width=32)
    h = auth["alice"]
    body = train_body(config={"data": {"train": "big"}, "max_steps": 1, "gpus": 0})
    r = client.post("/jobs", json=body, headers=h)
    assert r.status_code == 409, r.text
    assert r.headers["retry-after"].isdigit()
    assert "still being validated" in r.json()["detail"] and "config.data.train" in r.json()["detail"]
    assert wait_state(client, h, "big")["state"] == "valid"
    started = time.perf_counter()
    assert client.post("/jobs", json=body, headers=h).status_code == 201
    assert time.perf_counter() - started < 1.0  # cached: no second validation
    assert dataset_registry(settings).runs == 1


def test_concurrent_first_posts_validate_once(settings, auth, tokens):
    write_synthetic(settings.data_root / "fresh", videos=60, frames=4, seed=5, height=32, width=32)
    patient = create_app(settings.model_copy(update={"dataset_validation_wait_s": 60.0}))
    body = train_body(config={"data": {"train": "fresh"}, "max_steps": 1, "gpus": 0})
    answers, barrier = [], threading.Barrier(2)
    with TestClient(patient) as c:
        def post():
            barrier.wait()
            answers.append(c.post("/jobs", json=body, headers=auth["alice"]).status_code)
        threads = [threading.Thread(target=post) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert answers == [201, 201]
    assert dataset_registry(settings).runs == 1
    assert len(list((settings.runs_root / CACHE_DIR).glob("*.json"))) == 1


CROSS_PROCESS = """
import sys, time
from pathlib import Path
from api.datasets import DatasetRegistry
registry = DatasetRegistry(Path(sys.argv[1]))
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))
result = registry.start(Path(sys.argv[2])).result()
print(registry.runs, result.problem_count)
"""


def test_two_processes_validate_a_version_once(settings):
    """fcntl.flock single-flight: two API processes asking at the same instant."""
    root = (settings.data_root / "shared-big").resolve()
    write_synthetic(root, videos=150, frames=4, seed=9, height=32, width=32)
    cache = settings.runs_root / CACHE_DIR
    at = str(time.time() + 4.0)  # both past their imports before either starts
    procs = [subprocess.Popen([sys.executable, "-c", CROSS_PROCESS, str(cache), str(root), at],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
             for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(int(o[0]) for o in outputs) == [0, 1], outputs
    assert all(o[1] == "0" for o in outputs)
    assert len(list(cache.glob("*.json"))) == 1


def test_uvicorn_streams_an_upload_and_refuses_one_too_big(settings, source):
    """Through a real server: a chunked upload larger than the JSON body limit lands;
    one past SAM3V_UPLOAD_MAX_BYTES is 413 and leaves nothing."""
    with uvicorn_app(settings, SAM3V_MAX_BODY_BYTES="65536",
                     SAM3V_UPLOAD_MAX_BYTES=str(LIMIT)) as base:
        jobstore.migrate(settings)
        headers = {"Authorization": f"Bearer {create_token(settings, 'erin')}"}
        archive = tar_bytes(source)
        assert len(archive) > 65536

        def chunks(data: bytes):
            for i in range(0, len(data), 16 * 1024):
                yield data[i:i + 16 * 1024]
        r = httpx.put(f"{base}/datasets/streamed", content=chunks(archive), headers=headers,
                      timeout=30)
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 30
        while (body := httpx.get(f"{base}/datasets/streamed", headers=headers).json())["state"] \
                == "validating" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert body["state"] == "valid" and body["frames"] == 12
        try:
            r = httpx.put(f"{base}/datasets/toobig", content=chunks(os.urandom(2 * LIMIT)),
                          headers=headers, timeout=30)
            assert r.status_code == 413 and "SAM3V_UPLOAD_MAX_BYTES" in r.text, r.text
        except httpx.TransportError:
            pass  # the server may close the connection while the client still sends
        time.sleep(0.2)
        assert not (settings.data_root / "uploads" / ".tmp").exists() or \
            not list((settings.data_root / "uploads" / ".tmp").iterdir())
        assert client_visible(base, headers) == ["streamed"]


def client_visible(base: str, headers: dict) -> list[str]:
    items = httpx.get(f"{base}/datasets", headers=headers).json()["items"]
    return [d["name"] for d in items if d["owner"] != "shared"]
