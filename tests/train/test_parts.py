"""The trainer's parts on their own: sampler, schedules, parameter groups, checkpoints."""
from __future__ import annotations

import random

import pytest
import torch

from sam3_video import checkpoint
from sam3_video.config import OptimConfig, ScheduleConfig
from sam3_video.optim import LrFactor, build_optimizer, build_scheduler, param_groups
from sam3_video.sampler import ResumableSampler, SeededSamples


def _take(sampler: ResumableSampler, n: int) -> list:
    """Consume n items the way the trainer does: iterate, then advance."""
    out = []
    while len(out) < n:
        for item in sampler:
            out.append(item)
            sampler.advance(1)
            if len(out) == n:
                break
    return out


def test_sampler_ranks_split_every_epoch_without_overlap():
    ranks = [ResumableSampler(10, rank=r, world_size=3, seed=5) for r in range(3)]
    seen = [idx for s in ranks for idx, _ in s]
    assert len(seen) == 12 and set(seen) == set(range(10))  # padded to 4 per rank
    assert list(ranks[0]) == list(ResumableSampler(10, rank=0, world_size=3, seed=5))
    assert [i for i, _ in ranks[0]] != [i for i, _ in ResumableSampler(10, 0, 3, seed=6)]


def test_sampler_resumes_exactly_across_epochs():
    whole = _take(ResumableSampler(7, seed=1), 20)
    first = ResumableSampler(7, seed=1)
    head = _take(first, 9)  # stops inside the second epoch
    resumed = ResumableSampler(7, seed=1)
    resumed.load_state_dict(first.state_dict())
    assert head + _take(resumed, 11) == whole
    assert whole[:7] != whole[7:14]  # each epoch is shuffled anew
    assert len({seed for _, seed in whole}) == 20  # no two items share an augmentation seed


def test_seeded_samples_are_reproducible_and_leave_global_rng_alone():
    class Noisy(torch.utils.data.Dataset):
        rng = random.Random(0)

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return (i, self.rng.random(), torch.rand(()).item())

    data = SeededSamples(Noisy())
    state = torch.get_rng_state()
    a, b, c = data[(1, 42)], data[(1, 43)], data[(1, 42)]
    assert a == c and a != b
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("name, at_warmup_end, at_end", [
    ("cosine", 1.0, 0.1), ("constant", 1.0, 1.0), ("inverse_sqrt", 1.0, 0.5)])
def test_schedules(name, at_warmup_end, at_end):
    f = LrFactor(ScheduleConfig(name=name, warmup_steps=4, min_lr_ratio=0.1), max_steps=16)
    assert f(0) == pytest.approx(0.2)  # linear warmup from lr/(warmup+1)
    assert f(4) == pytest.approx(at_warmup_end)
    assert f(16) == pytest.approx(at_end)


class _FakeVit(torch.nn.Module):
    """Parameter names as in SAM3's ViT trunk (backbone.vision_backbone.trunk) and a head."""

    def __init__(self):
        super().__init__()
        trunk = torch.nn.Module()
        trunk.patch_embed = torch.nn.Linear(2, 2, bias=False)
        trunk.blocks = torch.nn.ModuleList(torch.nn.Linear(2, 2) for _ in range(3))
        self.backbone = torch.nn.Module()
        self.backbone.vision_backbone = torch.nn.Module()
        self.backbone.vision_backbone.trunk = trunk
        self.head = torch.nn.Linear(2, 2)


def test_layer_decay_and_no_decay_groups():
    model = _FakeVit()
    groups = param_groups(model, OptimConfig(lr=1.0, weight_decay=0.1, layer_decay=0.5))
    by_name = {n: g for g in groups for n in g["names"]}
    trunk = "backbone.vision_backbone.trunk."
    assert by_name["head.weight"]["lr"] == 1.0 and by_name["head.weight"]["weight_decay"] == 0.1
    assert by_name["head.bias"]["weight_decay"] == 0.0
    assert by_name[trunk + "blocks.2.weight"]["lr"] == 0.5
    assert by_name[trunk + "blocks.0.weight"]["lr"] == 0.125
    assert by_name[trunk + "patch_embed.weight"]["lr"] == 0.0625
    model.head.weight.requires_grad_(False)
    optimizer = build_optimizer(model, OptimConfig(lr=1.0))
    trained = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert id(model.head.weight) not in trained and len(trained) == 8


def test_scheduler_follows_the_config_not_the_checkpoint():
    model = torch.nn.Linear(2, 2)
    opt = build_optimizer(model, OptimConfig(lr=1.0))
    sched = build_scheduler(opt, ScheduleConfig(name="cosine"), max_steps=10)
    for _ in range(5):
        opt.step()
        sched.step()
    longer = build_scheduler(opt2 := build_optimizer(model, OptimConfig(lr=1.0)),
                             ScheduleConfig(name="cosine"), max_steps=20)
    longer.load_state_dict(sched.state_dict())
    opt2.step()
    longer.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(LrFactor(ScheduleConfig(), 20)(6))
    assert opt2.param_groups[0]["lr"] != pytest.approx(LrFactor(ScheduleConfig(), 10)(6))


def test_checkpoints_keep_last_and_skip_broken(tmp_path, caplog):
    for step in (1, 2, 3, 4):
        checkpoint.save_atomic({"step": step, "w": torch.ones(1000) * step},
                               tmp_path / checkpoint.checkpoint_name(step))
    checkpoint.prune(tmp_path, keep_last=2)
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path)] == [3, 4]
    newest = tmp_path / "step_0000004.pt"
    newest.write_bytes(newest.read_bytes()[:2000])
    (tmp_path / "step_0000005.pt.tmp").write_bytes(b"partial")
    (tmp_path / "step_5.pt").write_bytes(b"not a checkpoint name")
    state = checkpoint.load_latest(tmp_path)
    assert state["step"] == 3 and torch.equal(state["w"], torch.full((1000,), 3.0))
    assert "step_0000004.pt" in caplog.text


def test_rng_states_round_trip():
    states = checkpoint.rng_states()
    expected = (random.random(), torch.rand(3))
    checkpoint.restore_rng_states(states)
    assert random.random() == expected[0] and torch.equal(torch.rand(3), expected[1])


def test_rng_states_survive_a_weights_only_checkpoint(tmp_path):
    """Every generator (python, numpy, torch; gaussian caches too) comes back exactly from
    a checkpoint file read with weights_only=True."""
    import numpy as np

    random.seed(3), np.random.seed(4), torch.manual_seed(5)
    random.gauss(0, 1), np.random.normal()  # leave a cached gaussian in both
    path = checkpoint.save_atomic({"step": 1, "rng": [checkpoint.rng_states()],
                                   "sampler": ResumableSampler(5, seed=2).state_dict()},
                                  tmp_path / checkpoint.checkpoint_name(1))
    expected = (random.random(), random.gauss(0, 1), np.random.normal(), np.random.randint(1 << 30),
                torch.rand(3))
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    state = torch.load(path, weights_only=True)
    assert state["sampler"] == ResumableSampler(5, seed=2).state_dict()
    checkpoint.restore_rng_states(state["rng"][0])
    got = (random.random(), random.gauss(0, 1), np.random.normal(), np.random.randint(1 << 30),
           torch.rand(3))
    assert got[:4] == expected[:4] and torch.equal(got[4], expected[4])


def test_real_allocation_failures_count_as_out_of_memory():
    from sam3_video.failures import is_out_of_memory

    with pytest.raises(RuntimeError) as failed:
        torch.empty(2**50, dtype=torch.uint8)  # 1 PiB: the CPU allocator refuses
    assert is_out_of_memory(failed.value)
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
