"""Row 11, the trainer's half: a checkpoint written onto a full filesystem (a real 1 MiB
tmpfs) raises the OSError itself (ENOSPC), leaves no step_N.pt.tmp behind, keeps the
checkpoints already there, and the trainer reports it as exit code DISK_FULL."""
from __future__ import annotations

import errno

import pytest
import torch

from sam3_video import checkpoint, exit_codes
from sam3_video.failures import is_disk_full, report_failure
from tests.support.tmpfs import tmpfs  # noqa: F401 (fixture)


def test_row11_checkpoint_write_failure_cleans_up_and_reports_disk_full(tmp_path, tmpfs, capsys):
    directory = tmpfs.mount(tmp_path / "checkpoints", size="1m")
    small = {"step": 1, "w": torch.zeros(1000)}
    first = checkpoint.save_atomic(small, directory / checkpoint.checkpoint_name(1))
    (directory / "step_0000001.pt.tmp").write_bytes(b"x" * 1000)  # a killed writer's leftover

    big = {"step": 2, "w": torch.zeros(1_000_000)}  # 4 MB onto a 1 MiB filesystem
    with pytest.raises(OSError) as raised:
        checkpoint.save_atomic(big, directory / checkpoint.checkpoint_name(2))
    assert raised.value.errno == errno.ENOSPC
    assert sorted(p.name for p in directory.iterdir()) == ["step_0000001.pt"]  # no .tmp at all
    assert checkpoint.load_latest(directory)["step"] == 1 and first.is_file()

    assert is_disk_full(raised.value)
    assert report_failure(raised.value) == exit_codes.DISK_FULL
    assert "disk full: [Errno 28] No space left on device" in capsys.readouterr().err
    # Wrapped (as torch reports a failed write) it is still recognised; other errors are not.
    try:
        raise RuntimeError("unexpected pos 704 vs 598") from raised.value
    except RuntimeError as wrapped:
        assert is_disk_full(wrapped)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert report_failure(OSError(errno.EIO, "I/O error")) is None  # stays infrastructure

    # Room again (the old checkpoint pruned): the next save works.
    first.unlink()
    checkpoint.save_atomic(small | {"step": 3}, directory / checkpoint.checkpoint_name(3))
    assert [p.name for p in directory.iterdir()] == ["step_0000003.pt"]
