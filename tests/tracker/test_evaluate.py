"""Which frames the tracker's J&F counts: those the DAVIS 2017 semi-supervised evaluation
counts (after the prompt frame, the video's last frame excluded)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sam3_video.data import load_native, write_synthetic
from sam3_video.tracker.clips import track_mask
from sam3_video.tracker.evaluate import Masklet, objects_of, score_masklets


@pytest.fixture
def one_video(tmp_path):
    write_synthetic(tmp_path / "v", videos=1, frames=6, seed=0)
    return tmp_path / "v"


def _gt_masklet(data, track, video, prompt_frame):
    masks = [track_mask(track, video, t) for t in range(prompt_frame + 1, video.length)]
    return Masklet(video.id, track.id, prompt_frame, memory=True, masks=masks)


def test_the_last_frame_is_not_counted(one_video):
    data = load_native(one_video)
    video = next(iter(data.videos.values()))
    track = data.tracks_of(video.id)[0]
    perfect = _gt_masklet(data, track, video, 0)
    assert score_masklets([perfect], one_video)["j_and_f"] == pytest.approx(1.0)
    # wrong on the last frame only: DAVIS does not count it
    last_wrong = _gt_masklet(data, track, video, 0)
    last_wrong.masks[-1] = ~last_wrong.masks[-1]
    assert score_masklets([last_wrong], one_video)["j_and_f"] == pytest.approx(1.0)
    # wrong on a counted frame: it is seen
    middle_wrong = _gt_masklet(data, track, video, 0)
    middle_wrong.masks[1] = np.zeros_like(middle_wrong.masks[1])
    assert score_masklets([middle_wrong], one_video)["j_and_f"] < 0.95


def test_objects_without_a_counted_frame_are_not_evaluated(one_video):
    """An object first seen on the last-but-one frame has no frame DAVIS would count."""
    path = one_video / "annotations.json"
    annotations = json.loads(path.read_text())
    late = annotations["annotations"][1]
    late["segmentations"] = [None] * 4 + late["segmentations"][4:]
    late["bboxes"] = [None] * 4 + late["bboxes"][4:]
    late["areas"] = [None] * 4 + late["areas"][4:]
    path.write_text(json.dumps(annotations))
    data = load_native(one_video)
    video = next(iter(data.videos.values()))
    firsts = {track.id: track.present_frames()[0] for track in data.tracks_of(video.id)}
    assert sorted(firsts.values()) == [0, 4]  # 4 = length - 2
    evaluated = [obj.track_id for obj in objects_of(data, video)]
    assert evaluated == [tid for tid, first in firsts.items() if first == 0]
