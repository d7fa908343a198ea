"""model.activation_checkpointing: the ViT trunk recomputes its blocks in backward (each
block runs twice per training step) and the gradients are those of a plain step."""
from __future__ import annotations

import torch

from sam3_video.backbone.presets import TINY
from sam3_video.detector.loss import build_detection_loss

from .conftest import tiny_model


def count_runs(module: torch.nn.Module) -> list:
    """A list that grows by one each time `module.forward` runs (forward hooks do not fire
    when torch.utils.checkpoint recomputes, so the forward itself is wrapped)."""
    calls, forward = [], module.forward

    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)
    module.forward = counted
    return calls


def _step(model, batch) -> tuple[dict[str, torch.Tensor], int]:
    """Gradients of one detection loss backward, and how often trunk block 0 ran."""
    calls = count_runs(model.backbone.vision_backbone.trunk.blocks[0])
    loss_fn = build_detection_loss(TINY.num_queries, distributed=False)
    torch.manual_seed(1)
    loss_fn(model(batch), batch)["core_loss"].backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, len(calls)


def test_checkpointed_trunk_recomputes_and_gives_the_same_gradients(clip_batch):
    grads_on, calls_on = _step(tiny_model(seed=0, activation_checkpointing=True), clip_batch)
    grads_off, calls_off = _step(tiny_model(seed=0, activation_checkpointing=False), clip_batch)
    assert (calls_on, calls_off) == (2, 1)  # recomputed in backward, kept otherwise
    assert grads_on.keys() == grads_off.keys()
    trunk = [n for n in grads_on if ".trunk." in n]
    assert trunk
    for name in grads_on:
        torch.testing.assert_close(grads_on[name], grads_off[name], rtol=1e-4, atol=1e-6,
                                   msg=lambda m: f"{name}: {m}")


def test_evaluation_never_recomputes(clip_batch):
    model = tiny_model(seed=0, activation_checkpointing=True).eval()
    calls = count_runs(model.backbone.vision_backbone.trunk.blocks[0])
    with torch.no_grad():
        model(clip_batch)
    assert len(calls) == 1
