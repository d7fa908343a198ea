"""Dataset validation, once per dataset version and off the request path.

A dataset's version is cheap to compute: the sha256 of annotations.json's bytes plus the
names and mtimes of its frame folders (JPEGImages/<video>/; a folder's mtime changes when
a frame is added, removed or renamed). Its result ({version, problems, counts}) is a JSON
file RUNS_ROOT/.validations/<sha256(path, version)>.json, shared by every API process.
Each (path, version) is validated once: one future per key within a process, an
fcntl.flock on <key>.lock across processes (the second finds the file written).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from jobstore.settings import Settings
from sam3_video.data import ANNOTATION_FILE, IMAGE_DIR, DatasetError, load_native, validate_dataset

CACHE_DIR = ".validations"
MAX_STORED_PROBLEMS = 200  # the rest is counted; `python -m sam3_video.data validate` lists all


@dataclass(frozen=True)
class Validation:
    version: str
    problems: list[str]       # the first MAX_STORED_PROBLEMS
    problem_count: int
    counts: dict[str, int] | None  # videos, frames, objects, phrases; None when invalid

    @property
    def valid(self) -> bool:
        return self.problem_count == 0


class DatasetRegistry:
    """Validation results per dataset version; `runs` counts validations this process ran."""

    def __init__(self, cache_dir: Path, threads: int = 2):
        self.cache_dir = cache_dir
        self.runs = 0
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="dataset-validation")
        self._lock = threading.RLock()  # a done future's callback runs inside start()
        self._running: dict[str, Future] = {}
        self._digests: dict[tuple, str] = {}  # annotations.json (path, stat) -> sha256

    def version(self, root: Path) -> str:
        """Content version of the dataset at root (OSError if annotations.json is unreadable)."""
        ann = root / ANNOTATION_FILE
        st = ann.stat()
        key = (str(ann), st.st_ino, st.st_size, st.st_mtime_ns)
        digest = self._digests.get(key)
        if digest is None:  # hashed once per file version: POSTs on a big dataset stay cheap
            if len(self._digests) > 4096:
                self._digests.clear()
            h = hashlib.sha256()
            with ann.open("rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            digest = self._digests[key] = h.hexdigest()
        h = hashlib.sha256(digest.encode())
        try:
            with os.scandir(root / IMAGE_DIR) as entries:
                for name, mtime in sorted((e.name, e.stat().st_mtime_ns) for e in entries):
                    h.update(f"\0{name}\0{mtime}".encode(errors="surrogateescape"))
        except (FileNotFoundError, NotADirectoryError):
            h.update(b"\0no frames")
        return h.hexdigest()

    def _key(self, root: Path, version: str) -> str:
        return hashlib.sha256(f"{root}\0{version}".encode(errors="surrogateescape")).hexdigest()

    def cached(self, root: Path, version: str) -> Validation | None:
        path = self.cache_dir / f"{self._key(root, version)}.json"
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):  # a torn file cannot happen (os.replace), but
            return None                          # an unreadable one is revalidated
        return Validation(data["version"], data["problems"], data["problem_count"], data["counts"])

    def start(self, root: Path, version: str | None = None) -> Future:
        """A future of the Validation of root's current version (or the one given): done
        at once if cached, else the one validation of it (started now, or running)."""
        version = version or self.version(root)
        found = self.cached(root, version)
        if found is not None:
            done: Future = Future()
            done.set_result(found)
            return done
        key = self._key(root, version)
        with self._lock:
            future = self._running.get(key)
            if future is None:
                future = self._running[key] = self._pool.submit(self._validate, root, version, key)
                future.add_done_callback(lambda _f: self._forget(key))
        return future

    def _forget(self, key: str) -> None:
        with self._lock:
            self._running.pop(key, None)

    def is_running(self, root: Path, version: str) -> bool:
        with self._lock:
            return self._key(root, version) in self._running

    def _validate(self, root: Path, version: str, key: str) -> Validation:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.cache_dir / f"{key}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process validating it: wait, then read
            found = self.cached(root, version)
            if found is not None:
                return found
            with self._lock:
                self.runs += 1
            try:
                result = _run_validator(root, version)
            except Exception as err:  # noqa: BLE001  (a validator bug: say so, do not loop)
                result = Validation(version, [f"validation failed: {err.__class__.__name__}: "
                                              f"{err}"[:300]], 1, None)
            tmp = self.cache_dir / f"{key}.{os.getpid()}.{threading.get_ident()}.tmp"
            tmp.write_text(json.dumps({"version": result.version, "problems": result.problems,
                                       "problem_count": result.problem_count,
                                       "counts": result.counts}))
            os.replace(tmp, self.cache_dir / f"{key}.json")
            return result

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _run_validator(root: Path, version: str) -> Validation:
    problems = [str(p) for p in validate_dataset(root)]
    counts = None
    if not problems:
        try:
            ds = load_native(root, check_masks=False)  # already checked: only the counts
        except DatasetError as err:  # changed since validate_dataset read it
            problems = [str(p) for p in err.dataset_problems]
        else:
            counts = {"videos": len(ds.videos),
                      "frames": sum(v.length for v in ds.videos.values()),
                      "objects": len(ds.tracks), "phrases": len(ds.categories)}
    return Validation(version, problems[:MAX_STORED_PROBLEMS], len(problems), counts)


_registries: dict[Path, DatasetRegistry] = {}
_registries_lock = threading.Lock()


def dataset_registry(settings: Settings) -> DatasetRegistry:
    """The process's registry for this RUNS_ROOT (one per root, so tests' apps stay apart)."""
    cache_dir = settings.runs_root / CACHE_DIR
    with _registries_lock:
        registry = _registries.get(cache_dir)
        if registry is None:
            registry = _registries[cache_dir] = DatasetRegistry(
                cache_dir, settings.dataset_validation_threads)
        return registry
