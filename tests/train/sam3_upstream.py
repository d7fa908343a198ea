"""Upstream sam3's own builder on a CPU, as a program (each command in its own process, so
the test's process never holds the 850 M-parameter model):

    python -m tests.train.sam3_upstream make OUT.pt    # random init, the sam3.pt layout
    python -m tests.train.sam3_upstream load FILE.pt   # sam3's strict load; a JSON summary

`sam3.model_builder.build_sam3_video_model` is the model sam3.pt belongs to (its state dict
is the `detector.*` / `tracker.*` layout). On a CPU its constructors fail where they
precompute caches on device "cuda" (PositionEmbeddingSine, the decoder's box bias); those
caches are not in the state dict, so they are made on the CPU here instead. Random init
leaves the text encoder's two torch.empty parameters as garbage; they get open_clip's init
(sam3_video.compat item 3), as our own builder does.
"""
from __future__ import annotations

import json
import sys

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

from sam3_video import compat


class _CudaToCpu(TorchFunctionMode):
    """Tensor factories asked for device "cuda" make their tensor on the CPU."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _device_constructors() and str(kwargs.get("device", "")).startswith("cuda"):
            kwargs["device"] = "cpu"
        return func(*args, **kwargs)


def build_upstream(checkpoint_path: str | None = None):
    """sam3's video model (1008 px, as upstream hard-codes it) on the CPU; with a
    checkpoint, loaded by sam3's own code with strict_state_dict_loading=True."""
    from sam3 import model_builder

    with _CudaToCpu():
        model = model_builder.build_sam3_video_model(
            checkpoint_path=checkpoint_path, load_from_HF=False, bpe_path=compat.bpe_vocab_path(),
            strict_state_dict_loading=True, device="cpu")
    compat.release_predictor_autocast(model.tracker)  # upstream enters it globally
    return model


def make(out: str) -> dict:
    torch.manual_seed(0)
    model = build_upstream()
    compat.init_text_encoder_params(model)
    state = model.state_dict()
    torch.save(state, out)
    return {"tensors": len(state), "parameters": sum(p.numel() for p in model.parameters())}


def load(path: str) -> dict:
    """sam3's strict load (a missing, unexpected or misshapen key raises); the sum of one
    fine-tuned tensor shows the file's values arrived."""
    model = build_upstream(path)
    query_embed = model.detector.transformer.decoder.query_embed.weight
    return {"tensors": len(model.state_dict()), "query_embed_sum": float(query_embed.double().sum())}


if __name__ == "__main__":
    command, path = sys.argv[1:3]
    print(json.dumps({"make": make, "load": load}[command](path)), flush=True)
