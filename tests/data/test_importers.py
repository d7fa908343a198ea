"""Importers of public formats (DAVIS/MOSE/YouTube-VOS, YouTube-VIS, SA-V) into the native
dataset: sources written here with PIL, json and PyAV; results checked pixel for pixel
against the source masks and by the validator."""
from __future__ import annotations

import json
import subprocess
import sys

import av
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_util

from sam3_video.data import load_native, masks, validate_dataset
from sam3_video.data.importers import import_dataset

W, H = 64, 48


# ---------------------------------------------------------------------------- sources

def _palette() -> list[int]:
    rng = np.random.default_rng(7)
    colours = rng.integers(0, 256, (256, 3))
    colours[0] = 0
    colours[255] = 255   # DAVIS draws void in white
    return colours.astype(int).ravel().tolist()


def _labels(t: int, video: int) -> np.ndarray:
    """Object ids of frame t: object 1 moves right with a void (255) rim, object 2 is a
    bar present only in frames 1-2, object 3 (video 1 only) sits still."""
    ids = np.zeros((H, W), np.uint8)
    x = 4 + 5 * t
    ids[9:21, x - 1:x + 15] = 255
    ids[10:20, x:x + 14] = 1
    if t in (1, 2):
        ids[30:40, 20 + 3 * video:50] = 2
    if video == 1:
        ids[2:8, 50:60] = 3
    return ids


def _save_png(ids: np.ndarray, path) -> None:
    image = Image.fromarray(ids)
    image.putpalette(_palette())
    assert image.mode == "P"
    image.save(path)


def write_davis(root, videos=("bear", "camel"), frames=4, layout="davis",
                annotated=lambda t: True) -> dict[str, list[np.ndarray | None]]:
    """A DAVIS 2017 (or flat MOSE / YouTube-VOS) source; returns each video's label arrays
    (None for frames without a PNG)."""
    sub = "480p/" if layout == "davis" else ""
    rng = np.random.default_rng(0)
    truth = {}
    for v, name in enumerate(videos):
        jpeg_dir = root / f"JPEGImages/{sub}{name}"
        png_dir = root / f"Annotations/{sub}{name}"
        jpeg_dir.mkdir(parents=True)
        png_dir.mkdir(parents=True)
        truth[name] = []
        for t in range(frames):
            pixels = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(jpeg_dir / f"{t:05d}.jpg", quality=90)
            if annotated(t):
                ids = _labels(t, v)
                _save_png(ids, png_dir / f"{t:05d}.png")
                truth[name].append(ids)
            else:
                truth[name].append(None)
    return truth


def _assert_matches_labels(native, truth: dict) -> None:
    """Every imported mask is exactly `png == object id`; boxes are the masks' boxes."""
    by_name = {v.file_names[0].split("/")[0]: v for v in native.videos.values()}
    assert set(by_name) == set(truth)
    for name, labels in truth.items():
        video = by_name[name]
        tracks = native.tracks_of(video.id)
        present = sorted(set().union(*(set(np.unique(ids)) for ids in labels if ids is not None))
                         - {0, 255})
        assert len(tracks) == len(present)
        for oid, track in zip(present, tracks):
            for t, (ids, seg, box) in enumerate(zip(labels, track.segmentations, track.bboxes)):
                want = np.zeros((H, W), bool) if ids is None else ids == oid
                if not want.any():
                    assert seg is None and box is None, (name, oid, t)
                    continue
                assert np.array_equal(masks.decode(seg, H, W), want), (name, oid, t)
                assert box == masks.bbox(seg) == masks.bbox(masks.to_rle(want))


# ---------------------------------------------------------------------------- DAVIS family

def test_davis_masks_are_exactly_the_png_object_ids(tmp_path):
    truth = write_davis(tmp_path / "src")
    result = import_dataset("davis", tmp_path / "out", tmp_path / "src")
    assert result.ok, result.problems
    assert result.summary == {"videos": 2, "frames": 8, "objects": 5, "phrases": 1}
    assert validate_dataset(tmp_path / "out") == []
    native = load_native(tmp_path / "out")
    _assert_matches_labels(native, truth)
    assert native.categories == {1: "object"}
    # class-agnostic labels: no phrase is a sure negative anywhere
    assert all(v.not_exhaustive == {1} for v in native.videos.values())
    # object 2 is absent in frames 0 and 3: null there, which the native format reads as "not visible"
    bar = native.tracks_of(1)[1]
    assert [s is not None for s in bar.segmentations] == [False, True, True, False]
    # frames are the source's bytes
    assert ((tmp_path / "out/JPEGImages/bear/00002.jpg").read_bytes()
            == (tmp_path / "src/JPEGImages/480p/bear/00002.jpg").read_bytes())


def test_flat_layout_and_frames_without_png_are_null(tmp_path):
    """MOSE / YouTube-VOS: no resolution folder; YouTube-VOS annotates only some frames."""
    truth = write_davis(tmp_path / "src", videos=("a1", "b2", "c3"), frames=6, layout="flat",
                        annotated=lambda t: t % 2 == 0)
    result = import_dataset("davis", tmp_path / "out", tmp_path / "src")
    assert result.ok, result.problems
    native = load_native(tmp_path / "out")
    assert [v.length for v in native.videos.values()] == [6, 6, 6]   # every JPEG is a frame
    _assert_matches_labels(native, truth)
    for track in native.tracks:
        assert all(track.segmentations[t] is None for t in (1, 3, 5))


def test_imagesets_split_is_honoured(tmp_path):
    truth = write_davis(tmp_path / "src", videos=("bear", "camel", "dog"))
    (tmp_path / "src/ImageSets/2017").mkdir(parents=True)
    (tmp_path / "src/ImageSets/2017/val.txt").write_text("dog\nbear\n")
    result = import_dataset("davis", tmp_path / "out", tmp_path / "src", split="val")
    assert result.ok, result.problems
    native = load_native(tmp_path / "out")
    assert [v.file_names[0].split("/")[0] for v in native.videos.values()] == ["dog", "bear"]
    _assert_matches_labels(native, {k: truth[k] for k in ("dog", "bear")})

    missing = import_dataset("davis", tmp_path / "out2", tmp_path / "src", split="train")
    assert [str(p) for p in missing.problems] == [
        f"{tmp_path}/src/ImageSets/2017/train.txt: split file not found (--split train)"]
    assert not (tmp_path / "out2").exists()


def test_phrase_map_names_objects_per_video_or_per_id(tmp_path):
    write_davis(tmp_path / "src")
    phrase_map = tmp_path / "phrases.json"
    phrase_map.write_text(json.dumps({"bear/1": "brown bear", "1": "camel", "3": "rock"}))
    result = import_dataset("davis", tmp_path / "out", tmp_path / "src", phrases=phrase_map,
                            phrase="thing")
    assert result.ok, result.problems
    native = load_native(tmp_path / "out")
    named = {(v, native.categories[tr.category_id])
             for v in native.videos for tr in native.tracks_of(v)}
    assert named == {(1, "brown bear"), (1, "thing"), (2, "camel"), (2, "thing"), (2, "rock")}
    every = set(native.categories)
    assert all(v.not_exhaustive == every for v in native.videos.values())


def test_youtube_vos_meta_json_names_the_objects(tmp_path):
    write_davis(tmp_path / "src", layout="flat")
    meta = {"videos": {"bear": {"objects": {"1": {"category": "bear", "frames": ["00000"]},
                                            "2": {"category": "bird", "frames": ["00001"]}}},
                       "camel": {"objects": {"3": {"category": "stone", "frames": []}}}}}
    (tmp_path / "src/meta.json").write_text(json.dumps(meta))
    result = import_dataset("davis", tmp_path / "out", tmp_path / "src",
                            phrases=tmp_path / "src/meta.json")
    assert result.ok, result.problems
    native = load_native(tmp_path / "out")
    assert [native.categories[t.category_id] for t in native.tracks] == [
        "bear", "bird", "object", "object", "stone"]


def test_bad_png_is_reported_by_file_and_drop_invalid_keeps_the_rest(tmp_path):
    truth = write_davis(tmp_path / "src", videos=("bear", "camel", "dog"))
    bad_png = tmp_path / "src/Annotations/480p/camel/00002.png"
    _save_png(np.zeros((H + 2, W), np.uint8), bad_png)
    (tmp_path / "src/Annotations/480p/dog/00001.png").write_bytes(b"not a png")

    failed = import_dataset("davis", tmp_path / "out", tmp_path / "src")
    assert [str(p) for p in failed.problems] == [
        f"{bad_png} video 'camel': mask is 64x50 but the frame is 64x48 (w x h)",
        f"{tmp_path}/src/Annotations/480p/dog/00001.png video 'dog': cannot be read as a PNG "
        "(UnidentifiedImageError)"]
    assert not (tmp_path / "out").exists()   # nothing half-written

    kept = import_dataset("davis", tmp_path / "out", tmp_path / "src", drop_invalid=True)
    assert kept.ok, kept.problems
    assert [p.record for p in kept.skipped] == ["video 'camel'", "video 'dog'"]
    assert validate_dataset(tmp_path / "out") == []
    native = load_native(tmp_path / "out")
    _assert_matches_labels(native, {"bear": truth["bear"]})
    assert not (tmp_path / "out/JPEGImages/camel").exists()


def test_unusable_sources_are_named_and_leave_nothing(tmp_path):
    write_davis(tmp_path / "src")
    (tmp_path / "map.json").write_text(json.dumps({"bear/1": ""}))
    cases = [(tmp_path / "nowhere", {}), (tmp_path / "src", {"resolution": "1080p"}),
             (tmp_path / "src", {"phrases": tmp_path / "map.json"})]
    said = []
    for k, (src, options) in enumerate(cases):
        result = import_dataset("davis", tmp_path / f"out{k}", src, drop_invalid=True, **options)
        assert not result.ok and not result.droppable
        assert not (tmp_path / f"out{k}").exists()
        said += [str(p) for p in result.problems]
    assert said == [
        f"{tmp_path}/nowhere: source directory not found",
        f"{tmp_path}/src/JPEGImages: has no '1080p' folder (found: 480p); pass --resolution",
        f"{tmp_path}/map.json 'bear/1': phrase must be a non-empty string"]


# ---------------------------------------------------------------------------- YouTube-VIS family

def _square(x, y, side=10) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y:y + side, x:x + side] = True
    return m


def write_ytvis(root) -> tuple[dict, list]:
    """A YouTube-VIS file whose masks come in every form; returns (json, frames dir)."""
    frames = root / "frames"
    names = [f"vid7/{t:05d}.jpg" for t in range(4)]
    (frames / "vid7").mkdir(parents=True)
    for name in names:
        Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(frames / name)
    fortran = np.asfortranarray(_square(30, 5).astype(np.uint8))
    compressed = mask_util.encode(fortran)
    compressed = {"size": [H, W], "counts": compressed["counts"].decode()}
    # uncompressed RLE: column-major runs starting with background
    flat = _square(8, 20).flatten(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(np.concatenate(([0], flat, [1 - flat[-1]]))))
    runs = np.diff(np.concatenate(([0], change))).tolist()
    uncompressed = {"size": [H, W], "counts": runs}
    polygons = [[5.0, 5.0, 25.0, 5.0, 15.0, 25.0], [40.0, 30.0, 60.0, 30.0, 60.0, 45.0, 40.0, 45.0]]
    segs_a = [polygons, uncompressed, compressed, None]
    segs_b = [compressed, None, polygons, uncompressed]
    data = {
        "videos": [{"id": 7, "width": W, "height": H, "length": 4, "file_names": names}],
        "categories": [{"id": 3, "name": "person"}, {"id": 5, "name": "skateboard"}],
        "annotations": [
            {"id": 11, "video_id": 7, "category_id": 3, "iscrowd": 0, "segmentations": segs_a,
             "bboxes": [list(masks.bbox(masks.to_rle(_pycoco_decode(s)))) if s else None
                        for s in segs_a], "areas": [None] * 4},
            # LV-VIS style: no boxes
            {"id": 12, "video_id": 7, "category_id": 5, "iscrowd": 0, "segmentations": segs_b},
        ],
    }
    return data, frames


def _pycoco_decode(seg) -> np.ndarray:
    """pycocotools' own reading of a source segmentation."""
    if isinstance(seg, list):
        return mask_util.decode(mask_util.merge(mask_util.frPyObjects(seg, H, W))).astype(bool)
    if isinstance(seg["counts"], list):
        return mask_util.decode(mask_util.frPyObjects(seg, H, W)).astype(bool)
    return mask_util.decode({"size": seg["size"], "counts": seg["counts"].encode()}).astype(bool)


def test_ytvis_masks_equal_pycocotools_decode_of_every_source_form(tmp_path):
    data, frames = write_ytvis(tmp_path)
    (tmp_path / "train.json").write_text(json.dumps(data))
    result = import_dataset("ytvis", tmp_path / "out", tmp_path / "train.json", frames)
    assert result.ok, result.problems
    assert validate_dataset(tmp_path / "out") == []
    out = json.loads((tmp_path / "out/annotations.json").read_text())
    assert "not_exhaustive_category_ids" not in out["videos"][0]   # exhaustive labels
    assert [c["name"] for c in out["categories"]] == ["person", "skateboard"]
    for source, imported in zip(data["annotations"], out["annotations"]):
        assert (imported["id"], imported["video_id"]) == (source["id"], 7)
        for t, (src_seg, seg, box) in enumerate(zip(source["segmentations"],
                                                    imported["segmentations"], imported["bboxes"])):
            if src_seg is None:
                assert seg is None and box is None
                continue
            assert isinstance(seg["counts"], str)   # compressed RLE, whatever came in
            want = _pycoco_decode(src_seg)
            assert np.array_equal(masks.decode(seg, H, W), want), (source["id"], t)
            assert box == masks.bbox(masks.to_rle(want))   # LV-VIS: computed from the mask
    assert (tmp_path / "out/JPEGImages/vid7/00003.jpg").is_file()


def test_ytvis_missing_video_is_reported_and_drop_invalid_keeps_the_rest(tmp_path):
    data, frames = write_ytvis(tmp_path)
    data["annotations"].append({**data["annotations"][1], "id": 13, "video_id": 99})
    ann_file = tmp_path / "train.json"
    ann_file.write_text(json.dumps(data))
    failed = import_dataset("ytvis", tmp_path / "out", ann_file, frames)
    assert [str(p) for p in failed.problems] == [
        f"{ann_file} annotations[2] (id 13).video_id: 99 is not the id of a video in the file "
        "(or that video was left out)"]
    assert not (tmp_path / "out").exists()

    kept = import_dataset("ytvis", tmp_path / "out", ann_file, frames, drop_invalid=True)
    assert kept.ok, kept.problems
    assert [p.record for p in kept.skipped] == ["annotations[2] (id 13).video_id"]
    assert validate_dataset(tmp_path / "out") == []
    assert [t.id for t in load_native(tmp_path / "out").tracks] == [11, 12]


def test_ytvis_wrong_boxes_and_bad_rle_are_named_and_fix_boxes_repairs_boxes(tmp_path):
    data, frames = write_ytvis(tmp_path)
    data["annotations"][0]["bboxes"][0] = [40.0, 30.0, 5.0, 5.0]
    ann_file = tmp_path / "train.json"
    ann_file.write_text(json.dumps(data))
    failed = import_dataset("ytvis", tmp_path / "out", ann_file, frames)
    assert len(failed.problems) == 1
    problem = failed.problems[0]
    assert (problem.file, problem.record) == (str(ann_file), "annotations[0] (id 11).bboxes[0]")
    assert "does not match its mask" in problem.message and "--fix-boxes" in problem.message

    fixed = import_dataset("ytvis", tmp_path / "out", ann_file, frames, fix_boxes=True)
    assert fixed.ok, fixed.problems
    track = load_native(tmp_path / "out").tracks[0]
    assert track.bboxes[0] == masks.bbox(track.segmentations[0])

    data["annotations"][1]["segmentations"][0] = {"size": [H, W], "counts": "0\x7f!"}
    data["annotations"][1]["segmentations"][2] = {"size": [H + 1, W], "counts": [H * W]}
    ann_file.write_text(json.dumps(data))
    bad = import_dataset("ytvis", tmp_path / "out2", ann_file, frames, fix_boxes=True)
    assert [(p.record, p.message.split(":")[0]) for p in bad.problems] == [
        ("annotations[1] (id 12).segmentations[0]", "RLE counts do not decode"),
        ("annotations[1] (id 12).segmentations[2]",
         "RLE size 49x64 does not match the video's 48x64 (h x w)")]
    # left out, the skateboard is no longer exhaustively labelled in video 7: no sure negative
    kept = import_dataset("ytvis", tmp_path / "out3", ann_file, frames, fix_boxes=True,
                          drop_invalid=True)
    assert kept.ok, kept.problems
    native = load_native(tmp_path / "out3")
    assert [t.id for t in native.tracks] == [11]
    assert native.videos[7].not_exhaustive == {5} and not native.may_be_negative(7, 5)


# ---------------------------------------------------------------------------- SA-V

def write_mp4(path, frames: int, fps: int = 24) -> None:
    """Grey frames, frame t at level 20 * t + 10, so a written frame shows its index."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"qscale": "2"}
        for t in range(frames):
            image = np.full((H, W, 3), 20 * t + 10, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_sav(root, name="sav_000001", mp4_frames=9, annotated=3):
    """An SA-V video: two objects; object 1 leaves the frame at annotated frame 1."""
    root.mkdir(parents=True, exist_ok=True)
    write_mp4(root / f"{name}.mp4", mp4_frames)
    objects = [[_square(4 + 6 * k, 4), _square(40, 30) if k != 1 else np.zeros((H, W), bool)]
               for k in range(annotated)]
    masklet = [[masks.to_rle(m) for m in frame] for frame in objects]
    (root / f"{name}_manual.json").write_text(json.dumps({
        "video_id": name, "video_frame_count": mp4_frames, "video_height": H, "video_width": W,
        "masklet": masklet, "masklet_id": [0, 1], "masklet_num": 2}))
    return objects


def test_sav_writes_only_annotated_frames_with_their_indices_and_fps(tmp_path):
    objects = write_sav(tmp_path / "src")
    result = import_dataset("sav", tmp_path / "out", tmp_path / "src", phrase="thing")
    assert result.ok, result.problems
    assert validate_dataset(tmp_path / "out") == []
    out = json.loads((tmp_path / "out/annotations.json").read_text())
    video = out["videos"][0]
    assert video["frame_indices"] == [0, 4, 8]
    assert video["fps"] == 24.0
    assert video["not_exhaustive_category_ids"] == [1]
    assert video["file_names"] == ["sav_000001/00000.jpg", "sav_000001/00004.jpg",
                                   "sav_000001/00008.jpg"]
    assert sorted(p.name for p in (tmp_path / "out/JPEGImages/sav_000001").iterdir()) == [
        "00000.jpg", "00004.jpg", "00008.jpg"]
    for name, t in zip(video["file_names"], video["frame_indices"]):   # the right source frames
        level = np.asarray(Image.open(tmp_path / "out/JPEGImages" / name)).mean()
        assert abs(level - (20 * t + 10)) < 6, (name, level)
    native = load_native(tmp_path / "out")
    assert native.categories == {1: "thing"}
    for j, track in enumerate(native.tracks):
        for k, seg in enumerate(track.segmentations):
            want = objects[k][j]
            if not want.any():
                assert seg is None and track.bboxes[k] is None
            else:
                assert np.array_equal(masks.decode(seg, H, W), want)
                assert track.bboxes[k] == masks.bbox(seg)


def test_sav_mp4_shorter_than_its_masklets_is_reported(tmp_path):
    write_sav(tmp_path / "src", name="sav_000001")
    write_sav(tmp_path / "src", name="sav_000002", mp4_frames=9, annotated=4)  # needs frame 12
    write_sav(tmp_path / "src", name="sav_000003")
    (tmp_path / "src/sav_000003.mp4").write_bytes(b"\x00" * 4096)   # no video at all
    failed = import_dataset("sav", tmp_path / "out", tmp_path / "src")
    assert [str(p) for p in failed.problems[:1]] == [
        f"{tmp_path}/src/sav_000002.mp4 video 'sav_000002': has 9 frames but "
        "sav_000002_manual.json annotates frame 12 (4 frames, every 4th)"]
    assert [(p.file, p.record) for p in failed.problems[1:]] == [
        (f"{tmp_path}/src/sav_000003.mp4", "video 'sav_000003'")]
    assert failed.problems[1].message.startswith("cannot be decoded (")
    kept = import_dataset("sav", tmp_path / "out", tmp_path / "src", drop_invalid=True)
    assert kept.ok and kept.summary["videos"] == 1 and len(kept.skipped) == 2
    assert validate_dataset(tmp_path / "out") == []
    assert sorted(p.name for p in (tmp_path / "out/JPEGImages").iterdir()) == ["sav_000001"]


def test_sav_object_never_visible_is_named_by_masklet_id_and_can_be_left_out(tmp_path):
    write_sav(tmp_path / "src")
    manual = tmp_path / "src/sav_000001_manual.json"
    data = json.loads(manual.read_text())
    empty = masks.to_rle(np.zeros((H, W), bool))
    data["masklet"] = [frame + [empty] for frame in data["masklet"]]
    data.update(masklet_id=[0, 1, 7], masklet_num=3)
    manual.write_text(json.dumps(data))
    failed = import_dataset("sav", tmp_path / "out", tmp_path / "src")
    assert [str(p) for p in failed.problems] == [
        f"{manual} video 'sav_000001' masklet_id 7: the object is absent (null) in every frame"]
    kept = import_dataset("sav", tmp_path / "out", tmp_path / "src", drop_invalid=True)
    assert kept.ok and kept.summary["objects"] == 2, kept.problems


# ---------------------------------------------------------------------------- the CLI

def _cli(*args):
    return subprocess.run([sys.executable, "-m", "sam3_video.data", "import", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_cli_import_davis_round_trip(tmp_path):
    write_davis(tmp_path / "src")
    done = _cli("davis", tmp_path / "src", tmp_path / "out", "--phrase", "animal")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == (f"imported davis: 2 videos, 8 frames, 5 objects, 1 phrases "
                                   f"-> {tmp_path / 'out'}")
    checked = subprocess.run([sys.executable, "-m", "sam3_video.data", "validate",
                              str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0 and checked.stdout.startswith("ok: 2 videos, 8 frames")


def test_cli_import_failure_exits_one_with_one_problem_per_line(tmp_path):
    write_davis(tmp_path / "src")
    bad_png = tmp_path / "src/Annotations/480p/camel/00001.png"
    _save_png(np.zeros((H, W + 4), np.uint8), bad_png)
    failed = _cli("davis", tmp_path / "src", tmp_path / "out")
    assert failed.returncode == 1
    assert failed.stdout.splitlines() == [
        f"{bad_png} video 'camel': mask is 68x48 but the frame is 64x48 (w x h)"]
    assert "--drop-invalid" in failed.stderr
    kept = _cli("davis", tmp_path / "src", tmp_path / "out", "--drop-invalid")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert kept.stdout.splitlines() == [
        f"skipped: {bad_png} video 'camel': mask is 68x48 but the frame is 64x48 (w x h)",
        f"imported davis: 1 videos, 4 frames, 2 objects, 1 phrases -> {tmp_path / 'out'} "
        "(1 problem(s) skipped)"]
    taken = _cli("davis", tmp_path / "src", tmp_path / "out")
    assert taken.returncode == 1 and "not an empty directory" in taken.stderr


# ---------------------------------------------------------------------------- end to end

def _trains_and_evaluates(tmp_path, data_root, name: str, frames_per_clip: int) -> dict:
    """2 training steps on an imported dataset (validated before and after by the trainer),
    then an evaluation job on it from the last checkpoint; returns its video metrics."""
    from tests.metrics.conftest import run_program

    train = {"task": "detect", "model": {"preset": "tiny"},
             "data": {"train": name, "val": name, "frames_per_clip": frames_per_clip,
                      "batch_size_per_gpu": 2},
             "optim": {"lr": 1e-3}, "schedule": {"name": "constant"}, "max_steps": 2,
             "checkpoint_every": 100, "gpus": 0}
    run_dir = tmp_path / "runs" / "train"
    proc = run_program("train", train, run_dir, data_root, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines if "loss" in m] == [1, 2]
    assert set(json.loads((run_dir / "evaluation.json").read_text())) == {"base", "final"}

    evaluate = {"task": "detect", "model": {"preset": "tiny", "init": {
                    "path": str(run_dir / "checkpoints" / "step_0000002.pt")}},
                "data": {"dataset": name}, "gpus": 0}
    eval_dir = tmp_path / "runs" / "eval"
    proc = run_program("evaluate", evaluate, eval_dir, data_root, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    video = json.loads((eval_dir / "results.json").read_text())["video_metrics"]
    assert "video_mask_mAP_50_95" in video["saco"]
    imported = json.loads((data_root / name / "annotations.json").read_text())["annotations"]
    assert len(video["davis"]["per_object"]) == len(imported)   # every object is scored
    return video


@pytest.mark.slow
def test_imported_davis_trains_and_evaluates(tmp_path):
    data_root = tmp_path / "data"
    write_davis(tmp_path / "src", videos=("bear", "camel", "dog"))
    assert import_dataset("davis", data_root / "davis", tmp_path / "src").ok
    _trains_and_evaluates(tmp_path, data_root, "davis", frames_per_clip=3)


@pytest.mark.slow
def test_imported_ytvis_with_polygons_trains_and_evaluates(tmp_path):
    data_root = tmp_path / "data"
    data, frames = write_ytvis(tmp_path)
    (tmp_path / "train.json").write_text(json.dumps(data))
    assert import_dataset("ytvis", data_root / "ytvis", tmp_path / "train.json", frames).ok
    _trains_and_evaluates(tmp_path, data_root, "ytvis", frames_per_clip=3)


@pytest.mark.slow
def test_imported_sav_trains_and_evaluates(tmp_path):
    data_root = tmp_path / "data"
    write_sav(tmp_path / "src")
    assert import_dataset("sav", data_root / "sav", tmp_path / "src", phrase="thing").ok
    _trains_and_evaluates(tmp_path, data_root, "sav", frames_per_clip=3)
