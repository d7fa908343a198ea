"""Masks drawn on frames for a person to look at: one frame, a contact sheet, an .mp4.

    draw_masks(frame, [(mask, label), ...]) -> frame with each mask blended in its colour,
                                               outlined, and its label written on it
    contact_sheet(frames, per_frame, columns=4, max_frames=16) -> a grid of drawn frames
    write_mp4(path, frames, fps)            -> H.264 (yuv420p) video written with PyAV
    video_sheet(dataset, video_id, masklets=None) -> a contact sheet of a dataset's video,
                                               its ground truth or the given masklets drawn
    side_by_side(left, right, titles)       -> two sheets next to each other, captioned
    write_comparison_sheets(out_dir, root, masklets) -> <video>_vs_truth.png for the first
                                               held-out videos (evaluation jobs, and the final
                                               evaluation of a training job)

A label's colour comes from a fixed palette, picked by a hash of the label's text: the
same masklet (or phrase) keeps its colour on every frame, in every file and every run.
Everything is drawn inside the mask or inside the label's box (`label_box`); every other
pixel keeps the source's value. Torch-free (numpy, PIL, PyAV).
"""
from __future__ import annotations

import math
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Drawn = Sequence[tuple[np.ndarray, str]]  # (bool HxW mask, label) per object of a frame

# Distinct, saturated colours (Kelly's list without white, black and greys), RGB.
PALETTE = (
    (255, 179, 0), (128, 62, 117), (255, 104, 0), (166, 189, 215), (193, 0, 32),
    (206, 162, 98), (0, 125, 52), (246, 118, 142), (0, 83, 138), (255, 122, 92),
    (83, 55, 122), (255, 142, 0), (179, 40, 81), (244, 200, 0), (127, 24, 13),
    (147, 170, 0), (89, 51, 21), (241, 58, 19), (35, 44, 22), (0, 200, 200),
)
ALPHA = 0.45             # weight of the colour inside a mask
SHEET_GAP = 4            # pixels between contact-sheet cells (and around them)
SHEET_BACKGROUND = (24, 24, 24)
MAX_CELL_WIDTH = 480     # contact-sheet frames wider than this are scaled down
MP4_CODECS = ("libx264", "h264", "mpeg4")  # the first one this PyAV build can encode


def colour_of(label: str) -> tuple[int, int, int]:
    """The palette colour of a label: the same text, the same colour, everywhere."""
    return PALETTE[zlib.crc32(label.encode("utf-8")) % len(PALETTE)]


def _font(height: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=max(10, round(height / 32)))


def _check_mask(mask: np.ndarray, size: tuple[int, int], label: str) -> np.ndarray:
    mask = np.asarray(mask)
    width, height = size
    if mask.shape != (height, width):
        raise ValueError(f"mask of {label!r}: shape {mask.shape} does not match the frame's "
                         f"{height}x{width} (h x w)")
    return mask.astype(bool, copy=False)


def label_box(size: tuple[int, int], mask: np.ndarray, label: str) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), end exclusive, of the box `draw_masks` writes `label` in: at the
    mask's top-left corner, moved inside the frame of `size` (width, height). None for an
    empty mask (nothing is drawn for it)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    width, height = size
    left, top, right, bottom = _font(height).getbbox(label)
    box_w, box_h = min(width, right - left + 4), min(height, bottom - top + 4)
    x0 = min(int(cols[0]), width - box_w)
    y0 = min(int(rows[0]), height - box_h)
    return x0, y0, x0 + box_w, y0 + box_h


def _outline(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (the frame's edge counts as outside)."""
    inner = np.pad(mask, 1, constant_values=False)
    eroded = (inner[:-2, 1:-1] & inner[2:, 1:-1] & inner[1:-1, :-2] & inner[1:-1, 2:])
    return mask & ~eroded


def draw_masks(frame: Image.Image, masks: Drawn) -> Image.Image:
    """A copy of `frame` (RGB) with each mask blended in its label's colour, outlined in
    it, and the label written in a box of that colour at the mask's top-left corner.
    Masks are drawn in order (a later one lies on top); an empty mask draws nothing."""
    out = np.asarray(frame.convert("RGB")).astype(np.float32)
    checked = [(_check_mask(mask, frame.size, label), label) for mask, label in masks]
    for mask, label in checked:
        colour = np.array(colour_of(label), np.float32)
        out[mask] = out[mask] * (1 - ALPHA) + colour * ALPHA
        out[_outline(mask)] = colour
    image = Image.fromarray(np.rint(out).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    font = _font(frame.size[1])
    for mask, label in checked:  # labels after every mask: no mask hides a label
        box = label_box(frame.size, mask, label)
        if box is None:
            continue
        colour = colour_of(label)
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=colour)
        luma = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
        ink = (0, 0, 0) if luma > 140 else (255, 255, 255)  # legible on light and dark
        left, top, _, _ = font.getbbox(label)
        draw.text((box[0] + 2 - left, box[1] + 2 - top), label, fill=ink, font=font)
    return image


# ---------------------------------------------------------------- contact sheet

def sheet_indices(num_frames: int, max_frames: int = 16) -> list[int]:
    """The frames a contact sheet shows: all of them, or `max_frames` spread evenly from
    the first to the last."""
    if num_frames <= max_frames:
        return list(range(num_frames))
    return sorted({int(round(i)) for i in np.linspace(0, num_frames - 1, max_frames)})


def sheet_cells(count: int, size: tuple[int, int], columns: int = 4) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1), end exclusive, of each of `count` cells of a contact sheet of
    frames of `size` (width, height): row by row, SHEET_GAP apart; cells are scaled down
    to MAX_CELL_WIDTH."""
    width, height = size
    scale = min(1.0, MAX_CELL_WIDTH / width)
    cell_w, cell_h = max(1, round(width * scale)), max(1, round(height * scale))
    cells = []
    for i in range(count):
        row, col = divmod(i, columns)
        x0, y0 = SHEET_GAP + col * (cell_w + SHEET_GAP), SHEET_GAP + row * (cell_h + SHEET_GAP)
        cells.append((x0, y0, x0 + cell_w, y0 + cell_h))
    return cells


def contact_sheet(frames: list[Image.Image], per_frame: list[Drawn], columns: int = 4,
                  max_frames: int = 16) -> Image.Image:
    """A grid of up to `max_frames` of `frames` (sheet_indices), each drawn with its masks
    (per_frame[i] for frames[i]), `columns` per row, in time order. Frames take the first
    frame's size; wide ones are scaled down (masks with them) before drawing, so labels
    stay legible."""
    if len(frames) != len(per_frame):
        raise ValueError(f"per_frame has {len(per_frame)} entries for {len(frames)} frames")
    if not frames:
        raise ValueError("a contact sheet needs at least one frame")
    if columns < 1 or max_frames < 1:
        raise ValueError("columns and max_frames must be at least 1")
    chosen = sheet_indices(len(frames), max_frames)
    cells = sheet_cells(len(chosen), frames[0].size, columns)
    cols, rows = min(columns, len(chosen)), math.ceil(len(chosen) / columns)
    cell_w, cell_h = cells[0][2] - cells[0][0], cells[0][3] - cells[0][1]
    sheet = Image.new("RGB", (SHEET_GAP + cols * (cell_w + SHEET_GAP),
                              SHEET_GAP + rows * (cell_h + SHEET_GAP)), SHEET_BACKGROUND)
    for index, (x0, y0, _, _) in zip(chosen, cells):
        frame = frames[index].convert("RGB")
        masks = [(_check_mask(m, frame.size, label), label) for m, label in per_frame[index]]
        if frame.size != (cell_w, cell_h):
            frame = frame.resize((cell_w, cell_h), Image.Resampling.LANCZOS)
            masks = [(np.asarray(Image.fromarray(m).resize((cell_w, cell_h), Image.Resampling.NEAREST)),
                      label) for m, label in masks]
        sheet.paste(draw_masks(frame, masks), (x0, y0))
    return sheet


# ---------------------------------------------------------------- video

def _encoder() -> str:
    import av

    for name in MP4_CODECS:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 (PyAV raises its own errors for unknown encoders)
            continue
    raise RuntimeError(f"this PyAV build encodes none of {MP4_CODECS}")


def write_mp4(path: str | Path, frames: Iterable[Image.Image], fps: float) -> int:
    """Write `frames` (all of the first one's size) as an .mp4 at `fps` frames per second:
    H.264 in yuv420p, which every player shows. yuv420p needs even sides, so an odd width
    or height gets one black column or row. Returns the number of frames written."""
    import av

    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = Path(path)
    codec = _encoder()
    count = 0
    with av.open(str(path), mode="w") as container:
        stream = None
        for frame in frames:
            frame = frame.convert("RGB")
            if stream is None:
                size = frame.size
                even = (size[0] + size[0] % 2, size[1] + size[1] % 2)
                stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
                stream.width, stream.height, stream.pix_fmt = even[0], even[1], "yuv420p"
                if codec == "libx264":
                    stream.options = {"crf": "18", "preset": "veryfast"}
            if frame.size != size:
                raise ValueError(f"frame {count} is {frame.size[0]}x{frame.size[1]}, the first "
                                 f"was {size[0]}x{size[1]} (w x h)")
            if even != size:
                padded = Image.new("RGB", even)
                padded.paste(frame)
                frame = padded
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                container.mux(packet)
            count += 1
        if stream is None:
            raise ValueError(f"{path.name}: no frames to write")
        for packet in stream.encode():  # flush the encoder
            container.mux(packet)
    return count


# ---------------------------------------------------------------- a dataset's video

Masklet = tuple[str, Sequence]  # (label, [RLE or None per frame of the video])


def video_sheet(dataset, video_id: int, masklets: Sequence[Masklet] | None = None,
                max_frames: int = 16) -> Image.Image:
    """A contact sheet of video `video_id` of a NativeDataset (sam3_video.data), with the
    given masklets drawn, or its ground truth (phrase per track) when masklets is None.
    Only the frames shown are read. OSError when one cannot be read."""
    from sam3_video.data.masks import decode

    video = dataset.videos[video_id]
    if masklets is None:
        masklets = [(dataset.categories[t.category_id], t.segmentations)
                    for t in dataset.tracks_of(video_id)]
    frames, per_frame = [], []
    for t in sheet_indices(video.length, max_frames):
        with Image.open(dataset.image_dir / video.file_names[t]) as image:
            frames.append(image.convert("RGB"))
        per_frame.append([(decode(segs[t], video.height, video.width), label)
                          for label, segs in masklets if segs[t] is not None])
    return contact_sheet(frames, per_frame, columns=4, max_frames=max_frames)


def side_by_side(left: Image.Image, right: Image.Image, titles: tuple[str, str]) -> Image.Image:
    """`left` and `right` next to each other under a caption strip naming each."""
    font = _font(14)
    strip = 22
    out = Image.new("RGB", (left.width + right.width + SHEET_GAP,
                            strip + max(left.height, right.height)), SHEET_BACKGROUND)
    out.paste(left, (0, strip))
    out.paste(right, (left.width + SHEET_GAP, strip))
    draw = ImageDraw.Draw(out)
    for x, title in ((SHEET_GAP, titles[0]), (left.width + 2 * SHEET_GAP, titles[1])):
        draw.text((x, 3), title, fill=(235, 235, 235), font=font)
    return out


OVERLAY_VIDEOS = 2          # held-out videos drawn per evaluation
OVERLAY_MIN_SCORE = 0.5     # masklets drawn: those the thresholded metrics count


def write_comparison_sheets(out_dir: Path, root: Path, masklets: list[dict]) -> list[Path]:
    """For the first OVERLAY_VIDEOS videos: `<video>_vs_truth.png`, the masklets scoring at
    least OVERLAY_MIN_SCORE next to the ground truth."""
    from sam3_video.data import load_native  # the dataset reader pulls in torch

    native = load_native(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for video_id in sorted(native.videos)[:OVERLAY_VIDEOS]:
        # labelled by phrase alone, so a phrase has one colour in both halves
        shown = [(native.categories[m["category_id"]], m["segmentations"])
                 for m in masklets
                 if m["video_id"] == video_id and m["score"] >= OVERLAY_MIN_SCORE]
        sheet = side_by_side(video_sheet(native, video_id, shown), video_sheet(native, video_id),
                             (f"prediction (score >= {OVERLAY_MIN_SCORE})", "ground truth"))
        name = Path(native.videos[video_id].file_names[0]).parent.name or f"video_{video_id}"
        path = out_dir / f"{name}_vs_truth.png"
        sheet.save(path)
        written.append(path)
    return written
