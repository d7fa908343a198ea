"""The batched multi-frame forward gives the loss of the per-frame reference loop."""
from __future__ import annotations

import torch
from sam3.model.model_misc import SAM3Output
from sam3.model.sam3_image import Sam3Image

from sam3_video.backbone.presets import TINY
from sam3_video.detector.loss import build_detection_loss

from .conftest import FRAMES, tiny_model


def _loss_and_grads(model, forward, batch):
    model.zero_grad(set_to_none=True)
    losses = build_detection_loss(TINY.num_queries, distributed=False)(forward(batch), batch)
    losses["core_loss"].backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in losses.items()}, grads


@torch.no_grad()
def _per_frame_means(model, batch) -> dict[str, torch.Tensor]:
    """Upstream's loss (Sam3LossWrapper) of each frame on its own, as one image batch
    (one find stage) would get it, averaged over the frames."""
    wrapper = build_detection_loss(TINY.num_queries, distributed=False).wrapper
    outputs = model.forward_per_frame(batch)
    per_frame = []
    for stage, target in zip(outputs.output, batch.find_targets):
        one = SAM3Output([stage], iter_mode=SAM3Output.IterMode.LAST_STEP_PER_STAGE)
        per_frame.append(wrapper(one, [Sam3Image.back_convert(None, target)]))
    return {k: sum(torch.as_tensor(f[k]) for f in per_frame) / len(per_frame) for k in per_frame[0]}


def test_batch_has_several_frames_and_phrases(clip_batch):
    assert len(clip_batch.find_inputs) == FRAMES
    assert len(clip_batch.find_text_batch) == 2
    assert clip_batch.img_batch.shape[0] == 2 * FRAMES


def test_batched_loss_equals_per_frame_loss(clip_batch):
    model = tiny_model(seed=1)
    batched, batched_grads = _loss_and_grads(model, model.forward, clip_batch)
    reference, reference_grads = _loss_and_grads(model, model.forward_per_frame, clip_batch)
    means = _per_frame_means(model, clip_batch)  # frame by frame, then the mean over frames

    assert torch.isfinite(batched["core_loss"]) and batched["core_loss"] > 0
    assert abs(batched["core_loss"].item() - reference["core_loss"].item()) < 1e-4
    assert set(batched) == set(reference) == set(means)
    for name in reference:  # every component, not just the total
        torch.testing.assert_close(batched[name], reference[name], rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(batched[name], means[name].to(batched[name].dtype),
                                   rtol=1e-5, atol=1e-4)

    # the same parameters learn, by the same amount
    assert set(batched_grads) == set(reference_grads)
    assert len(batched_grads) > 100
    for name, grad in reference_grads.items():
        torch.testing.assert_close(batched_grads[name], grad, rtol=1e-3, atol=1e-5)


def test_batched_path_runs_grounding_once(clip_batch, monkeypatch):
    """One decoder call for all frames (the per-frame path calls it once per frame)."""
    model = tiny_model()
    calls = []
    decoder = model.transformer.decoder
    original = decoder.forward
    monkeypatch.setattr(decoder, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    model(clip_batch)
    assert len(calls) == 1
    calls.clear()
    model.forward_per_frame(clip_batch)
    assert len(calls) == FRAMES


def test_outputs_one_stage_per_frame_with_matching(clip_batch):
    model = tiny_model()
    outputs = model(clip_batch)
    assert len(outputs) == FRAMES
    for out, find_input in zip(outputs, clip_batch.find_inputs):  # the last step per frame
        assert out["pred_logits"].shape == (len(find_input.img_ids), TINY.num_queries, 1)
        assert "indices" in out  # matched to this frame's targets (training mode)


def test_box_prompts_on_some_frames_only(clip_batch):
    """Frames with different numbers of box prompts: the stacked call pads them (masked)
    and still matches the per-frame loop."""
    import copy
    import dataclasses

    batch = copy.copy(clip_batch)
    first = batch.find_inputs[0]
    queries = len(first.img_ids)
    boxes = torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.3, 0.6, 0.2, 0.2]])  # cx cy w h, normalised
    prompted = dataclasses.replace(
        first,
        input_boxes=boxes[:, None].expand(2, queries, 4).clone(),
        input_boxes_label=torch.ones(2, queries, dtype=torch.long),
        input_boxes_mask=torch.tensor([[False, False]] * queries),
    )
    batch.find_inputs = [prompted, *clip_batch.find_inputs[1:]]
    model = tiny_model(seed=2)
    batched, _ = _loss_and_grads(model, model.forward, batch)
    reference, _ = _loss_and_grads(model, model.forward_per_frame, batch)
    unprompted, _ = _loss_and_grads(model, model.forward_per_frame, clip_batch)
    assert abs(batched["core_loss"].item() - reference["core_loss"].item()) < 1e-4
    assert abs(reference["core_loss"].item() - unprompted["core_loss"].item()) > 1e-3  # prompts count
