"""The detection loss of a clip is the mean over its frames: its scale does not grow with
frames_per_clip, and logged fractions stay within 0..1."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from sam3_video.backbone.presets import TINY, default_image_size
from sam3_video.config import TrainConfig
from sam3_video.data import collate, make_video_dataset
from sam3_video.detector.loss import build_detection_loss
from sam3_video.detector.task import DetectTask

from .conftest import tiny_model

# share a name with the value: accuracies and F1 scores, never losses
FRACTION_MARKERS = ("acc", "f1")


@pytest.fixture(scope="module")
def two_frame_batch(synthetic_root):
    dataset = make_video_dataset(synthetic_root, image_size=default_image_size("tiny"),
                                 frames_per_clip=2)
    dataset.set_curr_epoch(0)
    return collate([dataset[0], dataset[1]])


def duplicated_frames(batch):
    """The same clips with every frame twice (T=2 -> T=4): frames 2, 3 repeat 0, 1."""
    images = batch.img_batch.shape[0]
    repeated = [dataclasses.replace(s, img_ids=s.img_ids + images) for s in batch.find_inputs]
    return dataclasses.replace(
        batch, img_batch=torch.cat([batch.img_batch, batch.img_batch]),
        find_inputs=[*batch.find_inputs, *repeated],
        find_targets=[*batch.find_targets, *batch.find_targets],
        find_metadatas=[*batch.find_metadatas, *batch.find_metadatas])


@torch.no_grad()
def test_loss_scale_does_not_grow_with_frames(two_frame_batch):
    batch4 = duplicated_frames(two_frame_batch)
    assert len(batch4.find_inputs) == 4 and batch4.img_batch.shape[0] == 2 * 4
    model = tiny_model(seed=5)
    loss_fn = build_detection_loss(TINY.num_queries, distributed=False)
    at2 = loss_fn(model(two_frame_batch), two_frame_batch)
    at4 = loss_fn(model(batch4), batch4)
    assert at2["core_loss"] > 0
    assert set(at2) == set(at4)
    for name in at2:  # the total and every component
        torch.testing.assert_close(torch.as_tensor(at4[name]), torch.as_tensor(at2[name]),
                                   rtol=1e-4, atol=1e-5, msg=name)


def test_logged_accuracies_stay_within_0_and_1(clip_batch):
    """Every logged fraction of a 4-frame clip batch (presence_dec_acc*, ce_f1*) in [0, 1].
    The presence head is set to say "present" everywhere, so the presence accuracy is high
    on every frame (a sum over the 4 frames would read far above 1)."""
    task = DetectTask(TrainConfig(data={"train": "unused"}, max_steps=1))
    model = tiny_model(seed=6)
    head = model.transformer.decoder.presence_token_head.layers[-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(5.0)
    logged = task.loss(model, clip_batch)
    fractions = {k: float(v) for k, v in logged.items() if any(m in k for m in FRACTION_MARKERS)}
    assert "presence_dec_acc_aux_0" in fractions and "ce_f1" in fractions
    assert fractions["presence_dec_acc"] > 0.5
    bad = {k: v for k, v in fractions.items() if not 0.0 <= v <= 1.0}
    assert not bad, bad


def test_negative_clips_push_presence_down(synthetic_root):
    """Clips asked for a phrase absent from their video (data.negative_ratio=1.0) have no
    target on any frame: sam3's loss gives them presence target 0 (IABCEMdetr's keep_loss),
    so training lowers the presence score."""
    dataset = make_video_dataset(synthetic_root, image_size=default_image_size("tiny"),
                                 frames_per_clip=2, negative_ratio=1.0)
    dataset.rng.seed(0)
    batch = collate([dataset[0], dataset[1]])
    assert all(int(t.num_boxes.sum()) == 0 for t in batch.find_targets)
    model = tiny_model(seed=7)
    loss_fn = build_detection_loss(TINY.num_queries, distributed=False)

    def presence(outputs):
        return torch.cat([out["presence_logit_dec"].detach().flatten() for out in outputs])

    outputs = model(batch)
    for out in outputs:
        out["presence_logit_dec"].retain_grad()
    losses = loss_fn(outputs, batch)
    assert losses["presence_loss"] > 0
    assert losses["loss_ce"] == 0  # no target: no per-query classification term
    losses["core_loss"].backward()
    grads = torch.cat([out["presence_logit_dec"].grad.flatten() for out in outputs])
    assert (grads > 0).all()  # descent lowers every frame's presence logit

    before = presence(outputs).sigmoid().mean()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(3):
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(batch), batch)["core_loss"].backward()
        optimizer.step()
    with torch.no_grad():
        after = presence(model(batch)).sigmoid().mean()
    assert after < before - 0.05, (before, after)


def test_task_trains_with_the_configured_negative_ratio(synthetic_root, monkeypatch):
    monkeypatch.setenv("DATA_ROOT", str(synthetic_root.parent))
    for ratio in (0.0, 0.3, 1.0):
        cfg = TrainConfig(data={"train": synthetic_root.name, "negative_ratio": ratio}, max_steps=1)
        assert DetectTask(cfg).train_dataset().negative_ratio == ratio
    assert TrainConfig(data={"train": "x"}, max_steps=1).data.negative_ratio == 0.3
