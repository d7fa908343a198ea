"""Frames out of a video file (PyAV): write the wanted ones as JPEGs, count all of them.

Decoding is sequential (a frame of a compressed stream needs the ones before it), so the
whole stream is decoded once and only the wanted indices are encoded to JPEG.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

JPEG_QUALITY = 92


class VideoDecodeError(ValueError):
    """The file is no video PyAV can decode (FFmpeg's message)."""


@dataclass(frozen=True)
class DecodedVideo:
    frame_count: int      # frames the stream actually holds
    width: int
    height: int
    fps: float | None     # the stream's average rate; None when the container has none
    written: list[int]    # indices written, ascending


def extract_frames(path: Path, wanted: set[int], target: Callable[[int], Path]) -> DecodedVideo:
    """Decode `path`, saving frame t (0-based, decode order) at target(t) for t in wanted.
    Raises VideoDecodeError when the file cannot be decoded."""
    import av   # PyAV: only the video importer needs it

    written = []
    count, width, height = 0, 0, 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError("the file has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            stream.thread_type = "AUTO"   # frame threads: decoding overlaps the JPEG writes
            for frame in container.decode(stream):
                width, height = frame.width, frame.height
                if count in wanted:
                    frame.to_image().save(target(count), quality=JPEG_QUALITY)
                    written.append(count)
                count += 1
    except av.error.FFmpegError as err:
        raise VideoDecodeError(f"{err.__class__.__name__}: {err}") from None
    return DecodedVideo(count, width, height, float(rate) if rate else None, written)
