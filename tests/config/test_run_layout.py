"""Checkpoint names in a run directory, shared by trainer, worker and API."""
import pytest

from sam3_video.run_layout import LATEST, checkpoint_name, find_checkpoint, list_checkpoints


def test_latest_named_and_invalid(tmp_path):
    ckpts = tmp_path / "checkpoints"
    assert find_checkpoint(tmp_path, LATEST) is None  # no directory yet
    ckpts.mkdir()
    for step in (20, 100, 3):
        (ckpts / checkpoint_name(step)).write_bytes(b"x")
    (ckpts / "step_0000200.pt.tmp").write_bytes(b"half")  # being written: not a checkpoint
    (ckpts / "notes.txt").write_text("x")
    assert [s for s, _ in list_checkpoints(ckpts)] == [3, 20, 100]
    assert find_checkpoint(tmp_path, LATEST) == ckpts / "step_0000100.pt"
    assert find_checkpoint(tmp_path, "step_0000020.pt") == ckpts / "step_0000020.pt"
    assert find_checkpoint(tmp_path, "step_0000021.pt") is None
    for bad in ("../secret.pt", "step_20.pt", "step_0000200.pt.tmp"):
        with pytest.raises(ValueError, match="not a checkpoint name"):
            find_checkpoint(tmp_path, bad)
