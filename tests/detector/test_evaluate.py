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
