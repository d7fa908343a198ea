"""DAVIS J (region IoU) and F (boundary F-measure) on hand-made masks."""
import numpy as np
import pytest

from sam3_video.metrics import j_and_f


def _rect(y0, y1, x0, x1, shape=(100, 100)):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_region_similarity_is_iou():
    a, b = _rect(0, 10, 0, 10), _rect(0, 10, 5, 15)
    assert j_and_f.region_similarity(a, b) == pytest.approx(50 / 150)
    assert j_and_f.region_similarity(a, a) == 1.0
    empty = np.zeros_like(a)
    assert j_and_f.region_similarity(empty, empty) == 1.0   # correctly reported absent
    assert j_and_f.region_similarity(a, empty) == 0.0


def test_boundary_f_measure_uses_the_diagonal_tolerance():
    gt = _rect(20, 60, 20, 60)
    # 100x100 image: tolerance ceil(0.008 * 141.4) = 2 px
    assert j_and_f.boundary_f_measure(gt, gt) == 1.0
    assert j_and_f.boundary_f_measure(_rect(20, 60, 22, 62), gt) == 1.0   # 2 px: within
    assert j_and_f.boundary_f_measure(_rect(20, 60, 23, 63), gt) < 1.0    # 3 px: not
    far = j_and_f.boundary_f_measure(_rect(30, 70, 30, 70), gt)            # 10 px off
    assert 0.0 < far < 0.5
    empty = np.zeros_like(gt)
    assert j_and_f.boundary_f_measure(empty, empty) == 1.0
    assert j_and_f.boundary_f_measure(gt, empty) == 0.0


def test_unmatched_object_scores_zero_and_match_is_per_phrase():
    from sam3_video.data import masks
    seg = masks.to_rle(_rect(20, 60, 20, 60))
    gt = {"videos": [{"id": 1, "height": 100, "width": 100, "file_names": ["a", "b"]}],
          "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "segmentations": [seg, seg]},
                          {"id": 2, "video_id": 1, "category_id": 2, "segmentations": [seg, None]}]}
    # a perfect mask, but under the wrong phrase for object 2 and below threshold for object 1
    preds = [{"video_id": 1, "category_id": 1, "score": 0.4, "segmentations": [seg, seg]},
             {"video_id": 1, "category_id": 2, "score": 0.9, "segmentations": [seg, seg]}]
    out = j_and_f.j_and_f(gt, preds, score_threshold=0.5)
    by_id = {o["gt_id"]: o for o in out["per_object"]}
    assert by_id[1]["matched"] is False and by_id[1]["j_and_f"] == 0.0
    # object 2: frame 0 perfect, frame 1 predicted but absent -> J = F = 0.5
    assert by_id[2]["j"] == pytest.approx(0.5) and by_id[2]["f"] == pytest.approx(0.5)
    assert out["j_and_f"] == pytest.approx(0.25)


def test_frames_j_and_f_is_the_mean_over_frames():
    """The per-object mean the tracker's evaluation and the masklet J&F share."""
    gt = [_rect(20, 60, 20, 60), _rect(20, 60, 22, 62), np.zeros((100, 100), bool)]
    pred = [_rect(20, 60, 20, 60), _rect(20, 60, 20, 60), np.zeros((100, 100), bool)]
    j, f = j_and_f.frames_j_and_f(zip(pred, gt))
    assert j == pytest.approx((1 + 38 * 40 / (42 * 40) + 1) / 3)
    assert f == pytest.approx(1.0)  # 2 px off: within the tolerance
    from sam3_video.data import masks
    rles = [[masks.to_rle(m) for m in seq] for seq in (pred, gt)]
    assert j_and_f.masklet_j_and_f(*rles, 100, 100) == (j, f)


# --- agreement with the DAVIS 2017 evaluation code -------------------------------------
# esdft-segmetric 0.1.0 ships, as segmetric/metrics.py, the functions of DAVIS 2017's own
# evaluation (db_eval_iou, db_eval_boundary with seg2bmap, an OpenCV dilation by
# skimage's disk), and as segmetric/evaluation.py its semi-supervised sequence evaluation.

from scipy import ndimage  # noqa: E402

from sam3_video.data import masks  # noqa: E402

SHAPES = [(1, 1), (1, 9), (9, 1), (2, 2), (3, 5), (16, 16), (17, 31), (31, 17), (48, 64),
          (64, 48), (75, 100),   # diagonal 125: 0.008 x 125 is exactly 1 -> radius 1
          (100, 100), (120, 213), (300, 400),   # diagonal 500 -> radius exactly 4
          (480, 854)]


def _random_mask(rng, shape):
    h, w = shape
    kind = rng.choice(["empty", "full", "pixel", "corner", "rect", "border_rect", "blob", "noise", "line"],
                      p=[0.05, 0.05, 0.07, 0.05, 0.2, 0.18, 0.22, 0.1, 0.08])
    m = np.zeros(shape, bool)
    if kind == "full":
        m[:] = True
    elif kind == "pixel":
        m[rng.integers(h), rng.integers(w)] = True
    elif kind == "corner":
        m[(0, 0, h - 1, h - 1)[c := rng.integers(4)], (0, w - 1, 0, w - 1)[c]] = True
    elif kind in ("rect", "border_rect"):
        y0, y1 = sorted(rng.integers(0, h + 1, 2))
        x0, x1 = sorted(rng.integers(0, w + 1, 2))
        if kind == "border_rect":   # stretch to one or two image borders
            y0, y1, x0, x1 = [(0, y1, x0, x1), (y0, h, x0, x1), (y0, y1, 0, x1), (y0, y1, x0, w),
                              (0, y1, 0, x1), (y0, h, x0, w)][rng.integers(6)]
        m[y0:y1, x0:x1] = True
    elif kind == "blob":
        noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=max(1.0, min(h, w) / 8))
        m = noise > rng.uniform(-0.5, 0.5) * noise.std()
    elif kind == "noise":
        m = rng.random(shape) < rng.uniform(0.05, 0.95)
    elif kind == "line":
        if rng.random() < 0.5:
            m[rng.integers(h), :] = True
        else:
            m[:, rng.integers(w)] = True
    return m


def _perturbed(rng, m):
    """A prediction near `m`: shifted a few pixels, grown or shrunk, or with pixels flipped."""
    h, w = m.shape
    kind = rng.choice(["shift", "grow", "shrink", "flip"])
    if kind == "shift":
        dy, dx = rng.integers(-min(4, h - 1), min(4, h - 1) + 1), rng.integers(-min(4, w - 1), min(4, w - 1) + 1)
        out = np.zeros_like(m)
        out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            m[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
        return out
    if kind == "grow":
        return ndimage.binary_dilation(m, iterations=int(rng.integers(1, 4)))
    if kind == "shrink":
        return ndimage.binary_erosion(m, iterations=int(rng.integers(1, 4)))
    return m ^ (rng.random(m.shape) < 0.02)


def _mask_pairs(n=200, seed=2017):
    """(prediction, ground truth) pairs: edge cases first, then random ones of every shape."""
    pairs = []
    for shape in [(1, 1), (5, 7), (48, 64)]:
        empty, full = np.zeros(shape, bool), np.ones(shape, bool)
        pairs += [(empty, empty), (full, full), (full, empty), (empty, full)]
    pix = np.zeros((20, 30), bool)
    pix[19, 29] = True                      # bottom-right pixel
    other = np.zeros_like(pix)
    other[0, 0] = True                      # top-left pixel
    pairs += [(pix, pix), (pix, other), (other, other), (pix, np.zeros_like(pix))]
    rng = np.random.default_rng(seed)
    while len(pairs) < n:
        shape = SHAPES[rng.integers(len(SHAPES))]
        gt = _random_mask(rng, shape)
        pred = _perturbed(rng, gt) if rng.random() < 0.75 else _random_mask(rng, shape)
        pairs.append((pred, gt))
    return pairs


def test_per_frame_j_and_f_equal_the_davis_2017_code():
    from segmetric.metrics import db_eval_boundary, db_eval_iou
    pairs = _mask_pairs()
    partial = 0
    for i, (pred, gt) in enumerate(pairs):
        j, f = j_and_f.region_similarity(pred, gt), j_and_f.boundary_f_measure(pred, gt)
        assert j == float(db_eval_iou(gt, pred)), (i, pred.shape)
        official_f = float(db_eval_boundary(gt, pred))
        assert f == official_f, (i, pred.shape, f, official_f)
        partial += 0 < f < 1
    assert len(pairs) >= 100 and partial >= 50   # many pairs test real boundary matching


def test_disk_dilation_is_the_distance_rule():
    rng = np.random.default_rng(0)
    for radius in (1, 2, 4, 8):
        y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1]
        disk = x * x + y * y <= radius * radius
        for _ in range(5):
            b = rng.random((40, 57)) < 0.01
            b[rng.integers(40), rng.integers(57)] = True
            expected = ndimage.binary_dilation(b, structure=disk)
            assert (j_and_f._dilate_disk(b, radius) == expected).all()


def test_tolerance_radius_and_counted_frames():
    assert j_and_f.tolerance_radius((75, 100)) == 1       # 0.008 x 125 = 1.0 exactly
    assert j_and_f.tolerance_radius((100, 100)) == 2
    assert j_and_f.tolerance_radius((480, 854)) == 8
    assert j_and_f.tolerance_radius((1080, 1920)) == 18
    assert j_and_f.counted_frames(5) == range(5)           # nothing given: every frame
    assert j_and_f.counted_frames(5, prompt_frame=0) == range(1, 4)   # DAVIS 2017 semi-supervised
    assert j_and_f.counted_frames(6, prompt_frame=2) == range(3, 5)
    with pytest.raises(ValueError):
        j_and_f.counted_frames(2, prompt_frame=0)          # no frame between first and last


def _write_png(path, labels):
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(labels.astype(np.uint8), mode="P")
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [128] * (256 - 4) * 3)
    img.save(path)


def _video(rng, shape, n_frames, n_objects):
    """Ground-truth and predicted label maps (0 = background, k = object k) of one video:
    each object a moving rectangle, leaving the frame for a while in some videos; the
    prediction shifted and sometimes missing it."""
    h, w = shape
    gt = np.zeros((n_frames, h, w), np.uint8)
    pred = np.zeros_like(gt)
    for k in range(1, n_objects + 1):
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        bh, bw = rng.integers(3, h // 2), rng.integers(3, w // 2)
        vy, vx = rng.integers(-2, 3, 2)
        for t in range(n_frames):
            y, x = y0 + vy * t, x0 + vx * t
            if not (k == 2 and t in (2, 3)):                      # object 2 leaves for a while
                gt[t, max(y, 0):max(y + bh, 0), max(x, 0):max(x + bw, 0)] = k
            if t == 1 or rng.random() < 0.8:                      # sometimes missed
                dy, dx = rng.integers(-3, 4, 2)
                pred[t, max(y + dy, 0):max(y + dy + bh, 0), max(x + dx, 0):max(x + dx + bw, 0)] = k
    return gt, pred


def test_per_video_j_and_f_equal_the_davis_2017_evaluation(tmp_path):
    from PIL import Image
    from segmetric.evaluation import _evaluate_sequence
    from segmetric.metrics import db_eval_boundary, db_eval_iou
    rng = np.random.default_rng(7)
    videos = {"wide": _video(rng, (45, 80), 7, 3), "tall": _video(rng, (90, 50), 5, 2),
              "bigger": _video(rng, (120, 213), 6, 2)}
    root, results = tmp_path / "DAVIS", tmp_path / "results"
    (root / "ImageSets").mkdir(parents=True)
    (root / "ImageSets" / "val.txt").write_text("\n".join(videos))
    for name, (gt, pred) in videos.items():
        assert set(np.unique(gt[0])) == set(range(gt.max() + 1))   # DAVIS: all objects in frame 0
        for t in range(len(gt)):
            (root / "JPEGImages" / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((*gt.shape[1:], 3), np.uint8)).save(root / "JPEGImages" / name / f"{t:05d}.jpg")
            _write_png(root / "Annotations" / name / f"{t:05d}.png", gt[t])
            _write_png(results / name / f"{t:05d}.png", pred[t])

    checked = 0
    for name, (gt, pred) in videos.items():
        official = _evaluate_sequence(name, root, "val", results)
        h, w = gt.shape[1:]
        for k in range(1, gt.max() + 1):
            gt_segs = [masks.to_rle(g == k) for g in gt]
            pred_segs = [masks.to_rle(p == k) for p in pred]
            # the semi-supervised protocol: neither the first (given) nor the last frame
            j, f = j_and_f.masklet_j_and_f(pred_segs, gt_segs, h, w, prompt_frame=0)
            assert j == pytest.approx(official["J"]["M_per_object"][f"{name}_{k}"], abs=1e-12)
            assert f == pytest.approx(official["F"]["M_per_object"][f"{name}_{k}"], abs=1e-12)
            # nothing given (the unsupervised rule, j_and_f's): every frame
            j, f = j_and_f.masklet_j_and_f(pred_segs, gt_segs, h, w)
            assert j == pytest.approx(np.mean(db_eval_iou(gt == k, pred == k)), abs=1e-12)
            assert f == pytest.approx(np.mean(db_eval_boundary(gt == k, pred == k)), abs=1e-12)
            checked += 1
    assert checked == 7
