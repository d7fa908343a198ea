"""Run by test_compat under `torchrun --nproc_per_node=2` (gloo): one DDP training step of
the tiny model, then release_process_group. Not a test module itself."""
from __future__ import annotations

import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from sam3_video import compat
from sam3_video.backbone.presets import TINY
from sam3_video.config import ModelConfig
from sam3_video.data import collate, make_video_dataset
from sam3_video.detector.build import build_model
from sam3_video.detector.loss import build_detection_loss


def main(data_root: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = build_model(ModelConfig())
    # Strict DDP: every parameter must receive a gradient in every step.
    ddp = DistributedDataParallel(model, find_unused_parameters=False)
    loss_fn = build_detection_loss(TINY.num_queries, distributed=True)
    assert loss_fn.wrapper.normalization == "global"
    dataset = make_video_dataset(data_root, image_size=TINY.image_size, frames_per_clip=2)
    dataset.set_curr_epoch(0)
    batch = collate([dataset[rank]])  # a different clip per rank
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    for _ in range(2):  # the second step fails if the first left a reduction unfinished
        optimizer.zero_grad()
        loss_fn(ddp(batch), batch)["core_loss"].backward()
        optimizer.step()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == [], missing
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()])
    gathered = [torch.zeros_like(checksum) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, checksum)
    assert all(torch.equal(g, gathered[0]) for g in gathered), "ranks diverged"
    compat.release_process_group(ddp)
    del ddp, model, optimizer
    assert not dist.is_initialized()
    print(f"rank {rank}: released", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
