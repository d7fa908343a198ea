"""write_synthetic: deterministic, two phrases per video, objects that enter and leave."""
from __future__ import annotations

import hashlib

from sam3_video.data import load_native, write_synthetic

from .conftest import SMALL


def _digest(root) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_data(synthetic_root, tmp_path):
    write_synthetic(tmp_path / "again", **SMALL)
    write_synthetic(tmp_path / "other", **{**SMALL, "seed": 1})
    assert _digest(tmp_path / "again") == _digest(synthetic_root)
    assert _digest(tmp_path / "other") != _digest(synthetic_root)


def test_every_video_has_a_target_and_a_distractor_of_another_phrase(synthetic_root):
    native = load_native(synthetic_root)
    assert len(native.videos) == SMALL["videos"]
    for video in native.videos.values():
        assert video.length == SMALL["frames"]
        assert (video.width, video.height) == (SMALL["width"], SMALL["height"])
        tracks = native.tracks_of(video.id)
        assert len(tracks) == 2
        assert tracks[0].category_id != tracks[1].category_id
    assert all(" " in name for name in native.categories.values())  # "colour shape" phrases


def test_an_object_enters_and_leaves(synthetic_root):
    native = load_native(synthetic_root)
    crossing = native.tracks_of(1)[1]  # video 0's distractor crosses the frame
    present = crossing.present_frames()
    last = SMALL["frames"] - 1
    assert 0 not in present and last not in present and present
    assert present == list(range(present[0], present[-1] + 1))  # one visit, no gaps
    assert crossing.segmentations[0] is None and crossing.bboxes[last] is None
