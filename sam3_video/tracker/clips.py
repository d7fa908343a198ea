"""Clips for tracker training, read from the native video dataset.

One item = one video: T frames (random stride and start, optionally reversed) and up to
`max_objects` of its objects (masklets) that are visible on the clip's first frame, which
is where the prompt goes. Objects may vanish and come back later in the clip; their masks
are then empty, which the loss and the tracker's object score handle.

Frames are resized to a square `image_size` and normalised as sam3 does (mean = std = 0.5).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from sam3_video.data.native import NativeDataset, Track, Video, load_native
from sam3_video.data.masks import decode


def load_frame(path: Path, image_size: int) -> torch.Tensor:
    """[3, S, S] float image, normalised to [-1, 1]."""
    with Image.open(path) as im:
        im = im.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
        array = np.asarray(im, dtype=np.float32) / 255.0
    return (torch.from_numpy(array).permute(2, 0, 1) - 0.5) / 0.5


def track_mask(track: Track, video: Video, t: int) -> np.ndarray:
    """Bool [H, W] mask of `track` on frame t (all False where absent)."""
    return decode(track.segmentations[t], video.height, video.width)


def resize_masks(masks: np.ndarray, image_size: int) -> torch.Tensor:
    """Bool [..., H, W] -> bool [..., S, S] (nearest neighbour)."""
    m = torch.from_numpy(np.ascontiguousarray(masks)).float()
    lead = m.shape[:-2]
    m = F.interpolate(m.reshape(-1, 1, *m.shape[-2:]), size=(image_size, image_size), mode="nearest")
    return m.reshape(*lead, image_size, image_size) > 0.5


@dataclass
class Clip:
    images: torch.Tensor     # float [T, 3, S, S]
    masks: torch.Tensor      # bool [T, K, S, S]
    video_id: int
    track_ids: list[int]


class TrackClips(Dataset):
    def __init__(self, root: str | Path, image_size: int, frames_per_clip: int = 4,
                 max_objects: int = 3, stride_min: int = 1, stride_max: int = 1,
                 random_reverse: bool = False):
        self.data: NativeDataset = load_native(root)
        self.image_size, self.frames = image_size, frames_per_clip
        self.max_objects = max_objects
        self.stride_min, self.stride_max = stride_min, stride_max
        self.random_reverse = random_reverse
        # Crowd annotations are regions, not objects to track.
        self.tracks = {vid: [tr for tr in self.data.tracks_of(vid) if not tr.iscrowd and tr.present_frames()]
                       for vid in self.data.videos}
        self.video_ids = [vid for vid, tracks in self.tracks.items() if tracks]
        if not self.video_ids:
            raise ValueError(f"{self.data.annotation_file}: no object to track in any video")

    def __len__(self) -> int:
        return len(self.video_ids)

    def _frame_indices(self, video: Video) -> list[int]:
        stride = int(torch.randint(self.stride_min, self.stride_max + 1, ()))
        # Shorten the stride for short videos; repeat the last frame if still too short.
        while stride > 1 and (self.frames - 1) * stride >= video.length:
            stride -= 1
        span = (self.frames - 1) * stride + 1
        start = int(torch.randint(0, max(1, video.length - span + 1), ()))
        indices = [min(start + i * stride, video.length - 1) for i in range(self.frames)]
        if self.random_reverse and bool(torch.rand(()) < 0.5):
            indices.reverse()
        return indices

    def _pick(self, video: Video) -> tuple[list[int], list[Track]]:
        """Frame indices and the objects visible on the first of them (retries a few
        random windows, then falls back to starting at an object's first frame)."""
        tracks = self.tracks[video.id]
        for _ in range(8):
            indices = self._frame_indices(video)
            visible = [tr for tr in tracks if tr.segmentations[indices[0]] is not None]
            if visible:
                return indices, visible
        first = tracks[int(torch.randint(0, len(tracks), ()))]
        start = first.present_frames()[0]
        indices = [min(start + i, video.length - 1) for i in range(self.frames)]
        return indices, [tr for tr in tracks if tr.segmentations[start] is not None]

    def __getitem__(self, index: int) -> Clip:
        video = self.data.videos[self.video_ids[index]]
        indices, visible = self._pick(video)
        order = torch.randperm(len(visible))[: self.max_objects].tolist()
        chosen = [visible[i] for i in sorted(order)]
        images = torch.stack([load_frame(self.data.image_dir / video.file_names[t], self.image_size)
                              for t in indices])
        masks = np.stack([[track_mask(tr, video, t) for tr in chosen] for t in indices])
        return Clip(images=images, masks=resize_masks(masks, self.image_size), video_id=video.id,
                    track_ids=[tr.id for tr in chosen])


@dataclass
class ClipBatch:
    """Several clips in the layout Sam3TrackerTrain.forward takes."""
    images: torch.Tensor        # float [T * num_clips, 3, S, S], frame-major
    img_ids: torch.Tensor       # long [T, num_objects]: image of each object on each frame
    masks: torch.Tensor         # bool [T, num_objects, S, S]

    def to(self, device) -> "ClipBatch":
        return ClipBatch(self.images.to(device, non_blocking=True), self.img_ids.to(device),
                         self.masks.to(device, non_blocking=True))

    @property
    def num_frames(self) -> int:
        return int(self.images.shape[0])


def collate_clips(clips: list[Clip]) -> ClipBatch:
    T = clips[0].images.shape[0]
    n = len(clips)
    images = torch.stack([c.images for c in clips], dim=1).flatten(0, 1)  # index t * n + c
    clip_of_object = torch.cat([torch.full((c.masks.shape[1],), i) for i, c in enumerate(clips)])
    img_ids = torch.arange(T)[:, None] * n + clip_of_object[None, :]
    masks = torch.cat([c.masks for c in clips], dim=1)
    return ClipBatch(images=images, img_ids=img_ids.long(), masks=masks)
