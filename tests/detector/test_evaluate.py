"""Detect evaluation (detector.evaluate.predict) on a real tiny model: how detections are
scored."""
from __future__ import annotations

import pytest
import torch

from sam3_video.backbone.presets import default_image_size
from sam3_video.data import collate, eval_clips
from sam3_video.detector import evaluate

from .conftest import tiny_model

SIZE = default_image_size("tiny")


def test_presence_is_counted_once(synthetic_root):
    """build_model sets supervise_joint_box_scores=True, so sam3 already multiplies the
    presence into pred_logits: a detection's score is pred_logits.sigmoid(), as upstream's
    video detector reads it (not class x presence^2)."""
    model = tiny_model(seed=4)
    assert model.supervise_joint_box_scores
    detections = evaluate.predict(model, synthetic_root, SIZE)
    assert detections

    model.eval()
    clips = list(eval_clips(synthetic_root, image_size=SIZE))
    checked = 0
    with torch.no_grad():
        for clip in clips[:2]:
            outputs = model(collate([clip.datapoint]))
            for frame, out in zip(clip.frame_indices, outputs):
                expected = out["pred_logits"][0, :, 0].sigmoid()
                presence = out["presence_logit_dec"][0].sigmoid().item()
                assert presence < 0.99  # a second presence factor would change the scores
                mine = {d.query_index: d.score for d in detections
                        if (d.video_id, d.frame_index, d.category_id)
                        == (clip.video_id, frame, clip.category_id)}
                kept = (expected >= evaluate.MIN_SCORE).nonzero().flatten().tolist()
                assert sorted(mine) == sorted(kept)
                for query, score in mine.items():
                    assert score == pytest.approx(expected[query].item(), rel=1e-5, abs=1e-7)
                    checked += 1
    assert checked > 0


def test_query_scores_multiply_presence_only_without_joint_scores():
    out = {"pred_logits": torch.tensor([[[0.0], [2.0]]]), "presence_logit_dec": torch.tensor([[0.0]])}
    torch.testing.assert_close(evaluate.query_scores(out, 0), torch.tensor([0.0, 2.0]).sigmoid())
    torch.testing.assert_close(evaluate.query_scores(out, 0, presence_in_logits=False),
                               torch.tensor([0.0, 2.0]).sigmoid() * 0.5)


@pytest.fixture(scope="module")
def long_video_root(tmp_path_factory):
    from sam3_video.data import write_synthetic

    root = tmp_path_factory.mktemp("long-video")
    write_synthetic(root, videos=1, frames=20, seed=7)
    return root


def test_chunked_predictions_equal_whole_video_predictions(long_video_root):
    """Detect evaluation runs EVAL_CHUNK_FRAMES (8) frames at a time: on a 20-frame video
    (chunks 8 + 8 + 4) the detections equal those of the whole video in one forward."""
    from sam3_video.backbone.vision import EVAL_CHUNK_FRAMES
    from sam3_video.data import masks as rle_masks

    assert EVAL_CHUNK_FRAMES == 8
    model = tiny_model(seed=8)
    chunked = evaluate.predict(model, long_video_root, SIZE)  # the default chunking
    whole = evaluate.predict(model, long_video_root, SIZE, chunk_frames=None)
    key = lambda d: (d.video_id, d.category_id, d.frame_index, d.query_index)  # noqa: E731
    assert {d.frame_index for d in whole} == set(range(20))
    assert sorted(map(key, chunked)) == sorted(map(key, whole))
    by_key = {key(d): d for d in whole}
    for d in chunked:
        ref = by_key[key(d)]
        assert d.score == pytest.approx(ref.score, rel=1e-4, abs=1e-6)
        assert d.bbox == pytest.approx(ref.bbox, abs=0.05)
        if rle_masks.area(d.segmentation) + rle_masks.area(ref.segmentation) > 0:
            assert rle_masks.iou_matrix([d.segmentation], [ref.segmentation])[0, 0] > 0.99


def test_split_frames_keeps_each_frames_images(clip_batch):
    from sam3_video.detector.model import split_frames

    parts = list(split_frames(clip_batch, 3))
    assert [start for start, _ in parts] == [0, 3]
    assert [len(p.find_inputs) for _, p in parts] == [3, 1]
    for start, part in parts:
        for t, stage in enumerate(part.find_inputs):
            original = clip_batch.find_inputs[start + t]
            torch.testing.assert_close(part.img_batch[stage.img_ids],
                                       clip_batch.img_batch[original.img_ids])
            assert part.find_targets[t] is clip_batch.find_targets[start + t]
    assert list(split_frames(clip_batch, None)) == [(0, clip_batch)]
