"""Every workaround for a pitfall of the `sam3` package (PyPI 0.1.4), in one place.

Each item below states the upstream behaviour it works around (file, function, the error
it raises) and why the workaround is safe. None of them changes what happens on a machine
with a GPU: CPU-only fixes switch themselves off when an accelerator exists, or only touch
CPU tensors. Items 1-9 concern the detector and the trainer, T1-T2 the tracker.
"""
from __future__ import annotations

import contextlib
import gc
import importlib.util
import os
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn

from sam3_video.config import ConfigError

BPE_VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
OPEN_CLIP_PIN = "open_clip_torch==3.3.0"


def has_accelerator() -> bool:
    """True when torch can reach a CUDA (or other) accelerator on this machine."""
    accel = getattr(torch, "accelerator", None)
    if accel is not None and hasattr(accel, "is_available"):
        return bool(accel.is_available())
    return torch.cuda.is_available()


# --- 1. Tensor.pin_memory() without an accelerator --------------------------------------
# Upstream: geometry_encoders.py (SequenceGeometryEncoder._encode_boxes, run even with zero
# boxes), sam3_tracker_base.py and sam3_video_inference.py call `t.pin_memory()` before a
# non-blocking copy. On a machine with no accelerator torch raises "Cannot access
# accelerator device when none is available". Pinning is only a speed-up for host->device
# copies, so with no device it is safe to skip. Scoped to a `with` block; a no-op when an
# accelerator exists, so GPU behaviour is untouched.

_pin_patch_depth = 0
_original_pin_memory = torch.Tensor.pin_memory


def _pin_memory_without_accelerator(self, *args, **kwargs):
    return self


@contextlib.contextmanager
def cpu_pin_memory_guard() -> Iterator[None]:
    """Within this block, Tensor.pin_memory() returns the tensor itself when no
    accelerator exists (re-entrant; restores the original method on exit)."""
    global _pin_patch_depth
    if has_accelerator():
        yield
        return
    if _pin_patch_depth == 0:
        torch.Tensor.pin_memory = _pin_memory_without_accelerator
    _pin_patch_depth += 1
    try:
        yield
    finally:
        _pin_patch_depth -= 1
        if _pin_patch_depth == 0:
            torch.Tensor.pin_memory = _original_pin_memory


# --- 2. CUDA allocations at construction time --------------------------------------------
# Upstream: PositionEmbeddingSine(precompute_resolution=...) and
# TransformerDecoder(resolution=..., stride=...) fill caches with tensors created on
# device="cuda" in __init__, which fails on a CPU. The caches are not parameters (no
# state-dict keys), so passing None on a CPU changes nothing but the cache warm-up.

def cuda_only(value):
    """`value` when CUDA is available, else None (for the precompute arguments above)."""
    return value if torch.cuda.is_available() else None


# --- 3. Uninitialised text-encoder parameters ----------------------------------------------
# Upstream: text_encoder_ve.py TextTransformer creates `positional_embedding` and (without
# proj_bias) `text_projection` with torch.empty and never initialises them, because the
# official path always loads a checkpoint. Built from scratch they hold garbage memory and
# the first step yields NaN ("linear_sum_assignment: matrix contains invalid numeric
# entries"). Initialise them the way open_clip does; a checkpoint load overwrites them.

def init_text_encoder_params(model: nn.Module) -> None:
    for module in model.modules():
        if type(module).__name__ != "TextTransformer":
            continue
        with torch.no_grad():
            nn.init.normal_(module.positional_embedding, std=0.01)
            if isinstance(module.text_projection, nn.Parameter):
                nn.init.normal_(module.text_projection, std=module.width ** -0.5)


# --- 4. Triton focal loss on a CPU ---------------------------------------------------------
# Upstream: sam3.train.loss.loss_fns.sigmoid_focal_loss defaults to triton=True and its
# callers (IABCEMdetr, Masks, SemanticSegCriterion) never override it; the Triton kernels
# fail on CPU tensors ("0 active drivers"). The function's own torch branch computes the
# same formula. The wrapper sends only non-CUDA inputs there: CUDA inputs keep Triton.

def install_cpu_focal_loss() -> None:
    """Idempotent: wrap loss_fns.sigmoid_focal_loss so CPU tensors use the torch branch."""
    from sam3.train.loss import loss_fns

    if getattr(loss_fns.sigmoid_focal_loss, "_sam3_video_cpu_safe", False):
        return
    upstream = loss_fns.sigmoid_focal_loss

    def sigmoid_focal_loss(inputs, targets, *args, triton=True, **kwargs):
        return upstream(inputs, targets, *args, triton=triton and inputs.is_cuda, **kwargs)

    sigmoid_focal_loss._sam3_video_cpu_safe = True
    sigmoid_focal_loss.__wrapped__ = upstream
    loss_fns.sigmoid_focal_loss = sigmoid_focal_loss


# --- 5. Global loss normalisation with one process ----------------------------------------
# Upstream: Sam3LossWrapper(normalization="global") calls torch.distributed.all_reduce
# unconditionally, which raises without a process group. With one process "global" and
# "local" are the same number, so use "local" then.

def loss_normalization(distributed: bool | None = None) -> str:
    """"global" when several processes share the batch, else "local"."""
    if distributed is None:
        distributed = dist.is_available() and dist.is_initialized()
    if distributed and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return "global"
    return "local"


# --- 6. The semantic-seg head's missing gradient under DDP --------------------------------
# Upstream: UniversalSegmentationHead always computes out["semantic_seg"] through
# semantic_seg_head; the roboflow fine-tune config has no loss on it (its block names a
# module path, sam3.losses..., that does not exist), so those parameters get no gradient
# and DDP fails with "Expected to have finished reduction in the prior iteration".
# Always include SemanticSegCriterion (weights from that config's commented block).

def semantic_seg_criterion():
    from sam3.train.loss.loss_fns import SemanticSegCriterion

    return SemanticSegCriterion(
        presence_head=False, presence_loss=False, focal=True, focal_alpha=0.6,
        focal_gamma=2.0, downsample=False,
        weight_dict={"loss_semantic_seg": 20.0, "loss_semantic_dice": 30.0},
    )


# --- 7. The gloo shutdown hang ---------------------------------------------------------------
# Upstream torch: a DDP Reducer still alive at interpreter exit holds the gloo
# ProcessGroup; its destructor then runs after the group is gone and the process can hang
# in ~ProcessGroupGloo. Break the DDP -> Reducer link, collect, then destroy the group.

def release_process_group(*objs) -> None:
    """Tear down distributed state in a safe order. Pass the DDP-wrapped model (and
    anything else holding it); the caller should drop its own references afterwards."""
    from torch.nn.parallel import DistributedDataParallel

    for obj in objs:
        if isinstance(obj, DistributedDataParallel):
            for attr in ("reducer", "logger"):
                if attr in obj.__dict__:
                    del obj.__dict__[attr]
    del objs
    gc.collect()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# --- 8. The missing BPE vocabulary -----------------------------------------------------------
# Upstream: the sam3 0.1.4 wheel lacks sam3/assets/bpe_simple_vocab_16e6.txt.gz, the text
# tokenizer's vocabulary. open_clip_torch 3.3.0 ships a byte-identical copy (md5
# 933b7abbbbde62c36f02f0e6ccde464f). find_spec locates it without importing open_clip.

def bpe_vocab_path() -> str:
    spec = importlib.util.find_spec("open_clip")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = os.path.join(folder, BPE_VOCAB_FILE)
            if os.path.isfile(candidate):
                return candidate
    raise ConfigError([
        f"bpe_vocab: {BPE_VOCAB_FILE} not found (the sam3 0.1.4 wheel lacks it); "
        f"install it with: pip install --no-deps {OPEN_CLIP_PIN}"
    ])



# --- 9. Parameters the detector never uses (strict DDP) -----------------------------------
# Upstream structure, any preset: SAM3VLBackbone(scalp=1) drops the neck's 0.5x level
# (convs.3), the text encoder returns token features so its pooled-output projection is
# unused, and the pixel decoder upsamples the 3 remaining levels in 2 steps, leaving its
# third stage unused; the tracker's neck (sam2_convs, when built) feeds only the tracker.
# DDP(find_unused_parameters=False) then stops with "Expected to have finished reduction
# in the prior iteration". They stay in the state dict (sam3.pt has them) but get
# requires_grad False: strict DDP works and optimisers skip them.
DETECTOR_UNUSED_PARAMS = (
    "backbone.vision_backbone.convs.3.",
    "backbone.vision_backbone.sam2_convs.",
    "backbone.language_backbone.encoder.text_projection",
    "segmentation_head.pixel_decoder.conv_layers.2.",
    "segmentation_head.pixel_decoder.norms.2.",
)


def freeze_detector_unused_params(model: nn.Module) -> list[str]:
    """requires_grad False on the parameters above; returns their names."""
    names = [n for n, _ in model.named_parameters() if n.startswith(DETECTOR_UNUSED_PARAMS)]
    params = dict(model.named_parameters())
    for name in names:
        params[name].requires_grad_(False)
    return names

# ==== Tracker workarounds (used by sam3_video.tracker) ==========================================

# --- T1. Tensor.cuda() / pin_memory() inside the tracker's memory path on a CPU -----------
# Upstream: Sam3TrackerBase._prepare_memory_conditioned_features calls
# prev["maskmem_features"].cuda(non_blocking=True) and prev["maskmem_pos_enc"][-1].cuda() to
# bring memories the predictor may have offloaded back to the GPU, and
# Sam3TrackerBase._get_tpos_enc calls torch.tensor(rel_pos_list).pin_memory(). With no CUDA
# both raise. The tensors are already on the right (CPU) device there, so on a CPU-only
# machine (and only inside those two methods) .cuda() returns the tensor itself and
# pin_memory is skipped. With CUDA present the methods run unwrapped.

_original_tensor_cuda = torch.Tensor.cuda


def _tensor_cuda_on_cpu_host(self, *args, **kwargs):
    return self


@contextlib.contextmanager
def _cpu_tensor_cuda_guard() -> Iterator[None]:
    """Within this block (CPU-only machines), Tensor.cuda() returns the tensor itself."""
    if torch.cuda.is_available():
        yield
        return
    previous = torch.Tensor.cuda
    torch.Tensor.cuda = _tensor_cuda_on_cpu_host
    try:
        yield
    finally:
        torch.Tensor.cuda = previous


def _cpu_safe_method(method):
    def wrapper(*args, **kwargs):
        if torch.cuda.is_available():
            return method(*args, **kwargs)
        with _cpu_tensor_cuda_guard(), cpu_pin_memory_guard():
            return method(*args, **kwargs)
    wrapper._sam3_video_cpu_safe = True
    wrapper.__wrapped__ = method
    wrapper.__name__ = method.__name__
    return wrapper


def install_cpu_tracker() -> None:
    """Idempotent: make Sam3TrackerBase's memory path (used by training and by
    Sam3TrackerPredictor alike) run on a CPU-only machine. No effect with CUDA."""
    from sam3.model.sam3_tracker_base import Sam3TrackerBase

    for name in ("_prepare_memory_conditioned_features", "_get_tpos_enc"):
        method = getattr(Sam3TrackerBase, name)
        if not getattr(method, "_sam3_video_cpu_safe", False):
            setattr(Sam3TrackerBase, name, _cpu_safe_method(method))


# --- T2. Sam3TrackerPredictor enters a global CUDA autocast ---------------------------------
# Upstream: Sam3TrackerPredictor.__init__ calls torch.autocast("cuda", bfloat16).__enter__()
# and never leaves it ("keep using for the entire model process"). A trainer that builds a
# predictor to evaluate would then train in bf16 autocast from that point on. Leave the
# context once the predictor is done with (inside the evaluation, sam3's behaviour is kept).

def release_predictor_autocast(predictor) -> None:
    context = getattr(predictor, "bf16_context", None)
    if context is not None:
        context.__exit__(None, None, None)
        predictor.bf16_context = None
