"""sam3_video.overlays, the drawing API others call: colours per label, what is drawn
where, the contact sheet's choice and layout of frames, and the .mp4 PyAV reads back."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sam3_video.overlays import (PALETTE, colour_of, contact_sheet, draw_masks, label_box,
                                 sheet_cells, sheet_indices, write_mp4)

from . import decode_mp4

H, W = 120, 160


def noise_frame(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(60, 160, (H, W, 3), dtype=np.uint8))


def smooth_frame(shift: int) -> Image.Image:
    """Gradients with a bright square moving right: what a codec keeps well (noise it does not)."""
    yy, xx = np.mgrid[:H, :W]
    rgb = np.stack([xx * 255 // W, yy * 255 // H, np.full_like(xx, 90)], -1).astype(np.uint8)
    rgb[40:70, 20 + 8 * shift:50 + 8 * shift] = (250, 250, 250)
    return Image.fromarray(rgb)


def box(y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_a_label_keeps_its_palette_colour_and_labels_get_different_ones():
    assert colour_of("#1 red square 0.91") == colour_of("#1 red square 0.91") in PALETTE
    colours = {colour_of(f"#{i} red square 0.91") for i in range(1, 9)}
    assert len(colours) >= 5  # masklets of one phrase are told apart by colour


def test_draw_masks_blends_each_mask_in_its_colour_and_leaves_the_rest():
    frame = noise_frame(0)
    a, b = box(60, 100, 10, 60), box(20, 70, 90, 150)
    out = np.asarray(draw_masks(frame, [(a, "cat"), (b, "dog")])).astype(int)
    src = np.asarray(frame).astype(int)
    touched = a | b
    for mask, label in ((a, "cat"), (b, "dog")):
        x0, y0, x1, y1 = label_box((W, H), mask, label)
        assert (x0, y0) == (int(np.flatnonzero(mask.any(0))[0]), int(np.flatnonzero(mask.any(1))[0]))
        touched[y0:y1, x0:x1] = True
    assert np.any(out != src, axis=-1)[a | b].all()
    assert (out[~touched] == src[~touched]).all()
    # inside, away from outline and label: the source moved towards the mask's colour
    inner = box(85, 95, 20, 50)
    towards = np.abs(out[inner] - colour_of("cat")).sum(-1) < np.abs(src[inner] - colour_of("cat")).sum(-1)
    assert towards.all()


def test_an_empty_mask_draws_nothing_and_a_wrong_shape_is_refused():
    frame = noise_frame(1)
    assert np.array_equal(np.asarray(draw_masks(frame, [(np.zeros((H, W), bool), "none")])),
                          np.asarray(frame))
    with pytest.raises(ValueError, match="does not match the frame"):
        draw_masks(frame, [(np.zeros((H, W + 1), bool), "wide")])


def test_a_label_box_stays_inside_the_frame():
    corner = box(H - 3, H, W - 3, W)
    x0, y0, x1, y1 = label_box((W, H), corner, "a long label at the corner")
    assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H


def test_contact_sheet_spreads_max_frames_over_the_video_in_a_grid():
    assert sheet_indices(40, 16)[0] == 0 and sheet_indices(40, 16)[-1] == 39
    assert len(sheet_indices(40, 16)) == 16 and sheet_indices(5, 16) == [0, 1, 2, 3, 4]
    frames = [noise_frame(s) for s in range(10)]
    per_frame = [[(box(10 + s, 40 + s, 10, 50), "obj")] for s in range(10)]
    sheet = np.asarray(contact_sheet(frames, per_frame, columns=3, max_frames=6))
    chosen = sheet_indices(10, 6)
    cells = sheet_cells(len(chosen), (W, H), columns=3)
    assert sheet.shape[1] == cells[2][2] + 4 and sheet.shape[0] == cells[-1][3] + 4  # 3 x 2, gaps
    for index, (x0, y0, x1, y1) in zip(chosen, cells):
        expected = np.asarray(draw_masks(frames[index], per_frame[index]))
        assert np.array_equal(sheet[y0:y1, x0:x1], expected), index
    with pytest.raises(ValueError, match="per_frame"):
        contact_sheet(frames, per_frame[:3])


def test_contact_sheet_scales_wide_frames_down_with_their_masks():
    wide = Image.new("RGB", (1000, 500), (100, 100, 100))
    mask = np.zeros((500, 1000), bool)
    mask[100:300, 200:600] = True
    sheet = contact_sheet([wide], [[(mask, "big")]])
    (x0, y0, x1, y1), = sheet_cells(1, (1000, 500))
    assert (x1 - x0, y1 - y0) == (480, 240)
    cell = np.asarray(sheet)[y0:y1, x0:x1]
    assert (cell[100, 200] != 100).any() and (cell[200, 400] == 100).all()  # mask: y 48-144, x 96-288


def test_write_mp4_gives_pyav_the_frames_back_and_pads_odd_sizes(tmp_path):
    frames = [smooth_frame(s) for s in range(5)]
    assert write_mp4(tmp_path / "even.mp4", frames, fps=7.5) == 5
    decoded = decode_mp4(tmp_path / "even.mp4")
    assert len(decoded) == 5 and decoded[0].shape == (H, W, 3)
    for got, sent in zip(decoded, frames):
        assert np.abs(got.astype(int) - np.asarray(sent).astype(int)).mean() < 2
    odd = [f.crop((0, 0, W - 1, H - 1)) for f in frames]
    write_mp4(tmp_path / "odd.mp4", odd, fps=10)
    assert decode_mp4(tmp_path / "odd.mp4")[0].shape == (H, W, 3)  # one black row and column
    with pytest.raises(ValueError, match="frame 1"):
        write_mp4(tmp_path / "mixed.mp4", [frames[0], odd[1]], fps=10)


def test_eval_comparison_sheet_shows_prediction_next_to_ground_truth(tmp_path):
    """Ground truth fed as the prediction draws two identical halves; no prediction above
    the score bar leaves the prediction half undrawn (the raw frames)."""
    from sam3_video.data import load_native, write_synthetic
    from sam3_video.overlays import write_comparison_sheets
    from sam3_video.metrics import predictions_from_ground_truth
    from sam3_video.overlays import video_sheet

    write_synthetic(tmp_path / "ds", videos=3, frames=4, seed=2, height=48, width=64)
    native = load_native(tmp_path / "ds")
    perfect = predictions_from_ground_truth(tmp_path / "ds", score=1.0)
    written = write_comparison_sheets(tmp_path / "perfect", tmp_path / "ds", perfect)
    assert [p.name for p in written] == ["video_000_vs_truth.png", "video_001_vs_truth.png"]
    truth = np.asarray(video_sheet(native, 1))
    sheet = np.asarray(Image.open(written[0]))
    h, w = truth.shape[:2]
    strip = sheet.shape[0] - h
    right = sheet[strip:, sheet.shape[1] - w:]
    assert np.array_equal(right, truth)
    assert np.array_equal(sheet[strip:, :w], truth)  # perfect prediction: the same picture

    unsure = [dict(m, score=0.3) for m in perfect]
    (bare,) = write_comparison_sheets(tmp_path / "unsure", tmp_path / "ds", unsure)[:1]
    left = np.asarray(Image.open(bare))[strip:, :w]
    assert np.array_equal(left, np.asarray(video_sheet(native, 1, [])))
    assert not np.array_equal(left, truth)
