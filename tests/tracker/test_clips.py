"""Clips from the native dataset: prompt frame visibility, absent frames, batch layout."""
from __future__ import annotations

import torch

from sam3_video.tracker.clips import TrackClips, collate_clips

from .conftest import IMAGE_SIZE


def test_objects_are_visible_on_the_first_frame(clips_root):
    torch.manual_seed(0)
    clips = TrackClips(clips_root / "train", IMAGE_SIZE, frames_per_clip=4, max_objects=3,
                       stride_max=2, random_reverse=True)
    for _ in range(3):
        for i in range(len(clips)):
            clip = clips[i]
            assert clip.images.shape == (4, 3, IMAGE_SIZE, IMAGE_SIZE)
            assert clip.masks.dtype == torch.bool and clip.masks.shape[0] == 4
            assert clip.masks[0].flatten(1).any(-1).all()  # the prompt frame shows every object
            assert -1.0 <= float(clip.images.min()) and float(clip.images.max()) <= 1.0


def test_absent_frames_give_empty_masks(clips_root):
    # Video 0's distractor crosses the frame: absent (null) on the first and last of its
    # 5 frames, so a 4-frame clip starting at frame 1 shows it, then loses it.
    torch.manual_seed(0)
    clips = TrackClips(clips_root / "train", IMAGE_SIZE, frames_per_clip=4, max_objects=3)
    track = [tr for tr in clips.tracks[clips.video_ids[0]] if tr.segmentations[-1] is None][0]
    seen_empty = False
    for _ in range(20):
        clip = clips[0]
        if track.id in clip.track_ids:
            k = clip.track_ids.index(track.id)
            seen_empty |= not bool(clip.masks[-1, k].any())
    assert seen_empty


def test_collate_layout(clips_root):
    clips = TrackClips(clips_root / "train", IMAGE_SIZE, frames_per_clip=3, max_objects=2)
    a, b = clips[0], clips[1]
    batch = collate_clips([a, b])
    n_a, n_b = a.masks.shape[1], b.masks.shape[1]
    assert batch.images.shape[0] == 3 * 2
    assert batch.masks.shape == (3, n_a + n_b, IMAGE_SIZE, IMAGE_SIZE)
    for t in range(3):
        assert batch.img_ids[t].tolist() == [t * 2] * n_a + [t * 2 + 1] * n_b
        assert torch.equal(batch.images[t * 2 + 1], b.images[t])
