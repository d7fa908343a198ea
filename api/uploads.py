"""The upload area under DATA_ROOT and the safe intake of an uploaded dataset archive.

    DATA_ROOT/uploads/<user id>/<name>/   a user's uploaded datasets (jobs name them by
                                          this path, relative to DATA_ROOT)
    DATA_ROOT/uploads/.tmp/               archives being received, extractions, trash

An archive (tar, tar.gz/bz2/xz or zip) is extracted here member by member, never with
extractall: absolute names, `..`, links, devices and fifos are refused, and the member
count and the bytes actually written (not the headers' sizes: zip bombs) are limited.
Everything happens in a temporary folder on the same file system, renamed into place at
the end, so a refused upload leaves nothing behind and a dataset never appears half
written.
"""
from __future__ import annotations

import errno
import lzma
import os
import re
import shutil
import stat
import tarfile
import time
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import anyio

from sam3_video.data import ANNOTATION_FILE

UPLOADS = "uploads"
TMP = ".tmp"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # no leading dot: no hidden or `..`
NAME_RULE = "1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit"
CHUNK = 1 << 20
STALE_AFTER_S = 24 * 3600
IGNORED_TOP_LEVEL = {"__MACOSX"}  # macOS Finder's resource forks beside the dataset folder


class UploadRefused(Exception):
    """The upload cannot be taken; status and a message naming the member or limit."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Limits:
    max_bytes: int            # the archive as sent
    max_extracted_bytes: int  # what its members extract to
    max_files: int            # members, folders included


def user_dir(data_root: Path, user_id: int) -> Path:
    return data_root / UPLOADS / str(user_id)


def tmp_dir(data_root: Path) -> Path:
    return data_root / UPLOADS / TMP


def is_foreign_upload(data_root: Path, path: Path, user_id: int) -> bool:
    """Whether a resolved path lies in the upload area outside the user's own folder
    (another user's uploads, the area itself, unfinished extractions)."""
    try:
        parts = Path(path).relative_to(data_root / UPLOADS).parts
    except ValueError:
        return False
    return not parts or parts[0] != str(user_id)


async def receive_archive(chunks, data_root: Path, max_bytes: int) -> Path:
    """Stream the request body (an async iterator of bytes) to a temporary file, 413 past
    max_bytes; the file is removed on any failure (a client gone mid-way included)."""
    folder = tmp_dir(data_root)
    folder.mkdir(parents=True, exist_ok=True)
    sweep_stale(folder)
    path = folder / f"{uuid.uuid4().hex}.part"
    seen, buffer = 0, bytearray()
    try:
        with open(path, "xb") as f:
            async for chunk in chunks:
                seen += len(chunk)
                if seen > max_bytes:
                    raise UploadRefused(413, f"body: archive larger than {max_bytes} bytes "
                                             "(SAM3V_UPLOAD_MAX_BYTES)")
                buffer += chunk
                if len(buffer) >= CHUNK:  # disk writes off the event loop, a MiB at a time
                    await anyio.to_thread.run_sync(f.write, bytes(buffer))
                    buffer.clear()
            await anyio.to_thread.run_sync(f.write, bytes(buffer))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if seen == 0:
        path.unlink(missing_ok=True)
        raise UploadRefused(422, "body: empty; send a tar, tar.gz or zip archive of the dataset")
    return path


def sweep_stale(folder: Path, max_age_s: float = STALE_AFTER_S) -> None:
    """Remove what a killed API process left in uploads/.tmp/ (no upload runs this long)."""
    cutoff = time.time() - max_age_s
    for entry in folder.iterdir():
        try:
            if entry.lstat().st_mtime < cutoff:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        except OSError:
            pass  # another request's sweep got there first


def take_upload(archive: Path, dest: Path, replace: bool, data_root: Path,
                limits: Limits) -> None:
    """Extract the archive into a new folder under uploads/.tmp/ and rename its dataset
    (annotations.json at the archive's root or inside its one top-level folder) to dest.
    On any refusal nothing is left: the folder is removed."""
    work = tmp_dir(data_root) / uuid.uuid4().hex
    work.mkdir(parents=True)
    try:
        with open(archive, "rb") as f:
            head = f.read(4)
        if head[:2] == b"PK":
            _extract_zip(archive, work, limits)
        else:
            _extract_tar(archive, work, limits)
        install(_dataset_root(work), dest, replace, data_root)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def install(root: Path, dest: Path, replace: bool, data_root: Path) -> None:
    """Rename the extracted dataset to dest: 409 if it exists and not replace; a replaced
    one is moved aside first and then removed, so dest is never half old, half new."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if dest.exists():
        if not replace:
            raise UploadRefused(409, f"dataset {dest.name!r} exists; PUT with ?replace=true "
                                     "to replace it")
        old = tmp_dir(data_root) / f"{uuid.uuid4().hex}.replaced"
        os.rename(dest, old)
    try:
        os.rename(root, dest)
    except OSError as err:
        if old is not None and not dest.exists():
            os.rename(old, dest)
            old = None
        if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise UploadRefused(409, f"dataset {dest.name!r} was uploaded by another "
                                     "request meanwhile") from None
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def remove(dest: Path, data_root: Path) -> None:
    """Delete an uploaded dataset: renamed away first, so it vanishes at once."""
    trash = tmp_dir(data_root) / f"{uuid.uuid4().hex}.deleted"
    trash.parent.mkdir(parents=True, exist_ok=True)
    os.rename(dest, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _member_path(work: Path, name: str) -> Path | None:
    """Where a member goes under work; None for the archive's root itself. Refuses names
    that could land outside it."""
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UploadRefused(422, f"archive member {name[:200]!r}: absolute path refused")
    parts = [p for p in PurePosixPath(name).parts if p != "."]
    if ".." in parts:
        raise UploadRefused(422, f"archive member {name[:200]!r}: '..' in the path refused")
    if "\x00" in name:
        raise UploadRefused(422, f"archive member {name[:200]!r}: NUL byte in the name")
    return work.joinpath(*parts) if parts else None


class _Writer:
    """Counts members and written bytes against the limits while files are written."""

    def __init__(self, work: Path, limits: Limits):
        self.work, self.limits = work, limits
        self.members = self.written = 0

    def count(self, name: str) -> None:
        self.members += 1
        if self.members > self.limits.max_files:
            raise UploadRefused(413, f"archive member {name[:200]!r}: more than "
                                     f"{self.limits.max_files} members (SAM3V_UPLOAD_MAX_FILES)")

    def folder(self, target: Path, name: str) -> None:
        try:
            target.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError as err:
            raise UploadRefused(422, f"archive member {name[:200]!r}: cannot be created "
                                     f"({err.strerror})") from None

    def file(self, target: Path, name: str, source) -> None:
        try:
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            raise UploadRefused(422, f"archive member {name[:200]!r}: appears twice") from None
        except OSError as err:
            raise UploadRefused(422, f"archive member {name[:200]!r}: cannot be created "
                                     f"({err.strerror})") from None
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(CHUNK):
                self.written += len(chunk)
                if self.written > self.limits.max_extracted_bytes:
                    raise UploadRefused(413, f"archive member {name[:200]!r}: the archive "
                                             f"extracts to more than "
                                             f"{self.limits.max_extracted_bytes} bytes "
                                             "(SAM3V_UPLOAD_MAX_EXTRACTED_BYTES)")
                out.write(chunk)


def _extract_tar(archive: Path, work: Path, limits: Limits) -> None:
    writer = _Writer(work, limits)
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:  # headers read one at a time: no list of every member
                name = member.name
                writer.count(name)
                target = _member_path(work, name)
                if member.issym() or member.islnk():
                    raise UploadRefused(422, f"archive member {name[:200]!r}: links are refused")
                if member.isdir():
                    if target is not None:
                        writer.folder(target, name)
                elif member.isreg():
                    if target is None:
                        raise UploadRefused(422, f"archive member {name[:200]!r}: not a file name")
                    source = tar.extractfile(member)
                    writer.file(target, name, source)
                else:
                    raise UploadRefused(422, f"archive member {name[:200]!r}: device, fifo or "
                                             "other special file refused")
    except tarfile.ReadError as err:
        if writer.members == 0:
            raise UploadRefused(422, "body: not a tar, tar.gz or zip archive") from None
        raise UploadRefused(422, f"body: corrupt archive after {writer.members} members "
                                 f"({err})") from None
    except (EOFError, zlib.error, lzma.LZMAError, OSError) as err:
        if isinstance(err, OSError) and err.errno is not None:
            raise  # the server's disk (ENOSPC...), not the archive
        raise UploadRefused(422, f"body: truncated or corrupt archive after "
                                 f"{writer.members} members ({err.__class__.__name__})") from None


def _extract_zip(archive: Path, work: Path, limits: Limits) -> None:
    writer = _Writer(work, limits)
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = info.filename
                writer.count(name)
                target = _member_path(work, name)
                mode = info.external_attr >> 16
                kind = stat.S_IFMT(mode)
                if kind == stat.S_IFLNK:
                    raise UploadRefused(422, f"archive member {name[:200]!r}: links are refused")
                if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                    raise UploadRefused(422, f"archive member {name[:200]!r}: device, fifo or "
                                             "other special file refused")
                if info.flag_bits & 0x1:
                    raise UploadRefused(422, f"archive member {name[:200]!r}: encrypted")
                if info.is_dir():
                    if target is not None:
                        writer.folder(target, name)
                    continue
                if target is None:
                    raise UploadRefused(422, f"archive member {name[:200]!r}: not a file name")
                with zf.open(info) as source:
                    writer.file(target, name, source)
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as err:
        raise UploadRefused(422, f"body: corrupt zip archive after {writer.members} members "
                                 f"({err})"[:300]) from None


def _dataset_root(work: Path) -> Path:
    if (work / ANNOTATION_FILE).is_file():
        return work
    entries = [e for e in work.iterdir() if e.name not in IGNORED_TOP_LEVEL]
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / ANNOTATION_FILE).is_file():
        return entries[0]
    raise UploadRefused(422, f"body: the archive holds no {ANNOTATION_FILE} at its root or "
                             "inside one top-level folder (expected annotations.json + "
                             "JPEGImages/, see the native dataset format)")
