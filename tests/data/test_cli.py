"""The dataset CLI, run as a real subprocess."""
from __future__ import annotations

import subprocess
import sys


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "sam3_video.data", *args],
                          capture_output=True, text=True, timeout=120)


def test_synthetic_then_validate_exits_zero(tmp_path):
    made = _cli("synthetic", str(tmp_path / "ds"), "--videos", "2", "--frames", "3", "--seed", "5")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "ds/JPEGImages/video_001/00002.jpg").is_file()
    checked = _cli("validate", str(tmp_path / "ds"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("ok: 2 videos, 6 frames")


def test_validate_lists_every_problem_and_exits_nonzero(dataset_copy):
    (dataset_copy.root / "JPEGImages/video_001/00003.jpg").unlink()
    dataset_copy.edit(lambda d: d["annotations"][0].update(category_id=123))
    result = _cli("validate", str(dataset_copy.root))
    assert result.returncode != 0
    assert result.stdout.splitlines() == [
        "annotations.json annotations[0].category_id: 123 is not the id of a category",
        "JPEGImages/video_001/00003.jpg videos[1].file_names[3]: frame file not found",
    ]


def test_bad_arguments_are_refused(tmp_path):
    result = _cli("synthetic", str(tmp_path / "x"), "--frames", "0")
    assert result.returncode != 0 and "--frames" in result.stderr


def test_validating_needs_neither_torch_nor_sam3():
    """The API validates datasets in its own process: that must stay a light import."""
    code = ("import sys, sam3_video.data as d; d.validate_dataset('/nonexistent'); "
            "print(sorted(m for m in ('torch', 'sam3') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
