"""A distributed, resumable sampler: the data order is a pure function of (seed, epoch).

Each epoch is a seeded permutation of the dataset, padded to a multiple of the world size
and dealt out round-robin to ranks. The trainer reports how many samples each rank has
consumed; that position goes into the checkpoint, so a resumed run continues with exactly
the samples an uninterrupted run would have seen next.

Every item is yielded as (dataset index, sample seed). The seed is derived from
(seed, epoch, position) so random augmentations (frame sampling, time reversal) do not
depend on how many samples a process happened to draw before: see SeededSamples.
"""
from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def _sample_seed(seed: int, epoch: int, position: int) -> int:
    # Mix with distinct odd constants so nearby (epoch, position) pairs do not collide.
    return (seed * 1_000_003 + epoch * 7_919_317 + position * 104_729) % (2**31 - 1)


class ResumableSampler(Sampler):
    def __init__(self, num_samples: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0, shuffle: bool = True):
        if num_samples < 1:
            raise ValueError("the dataset has no samples")
        self.num_samples = num_samples
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.consumed = 0  # samples of the current epoch this rank has consumed

    @property
    def per_rank(self) -> int:
        """Samples per rank per epoch (the padded epoch split evenly)."""
        return -(-self.num_samples // self.world_size)

    def epoch_order(self, epoch: int) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(self.num_samples, generator=g).tolist()
        else:
            order = list(range(self.num_samples))
        total = self.per_rank * self.world_size
        order = (order * (total // len(order) + 1))[:total]  # pad by repeating from the start
        return order[self.rank::self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self.epoch_order(self.epoch)
        for pos in range(self.consumed, len(order)):
            global_pos = pos * self.world_size + self.rank
            yield order[pos], _sample_seed(self.seed, self.epoch, global_pos)

    def __len__(self) -> int:
        return self.per_rank - self.consumed

    def advance(self, n: int) -> None:
        """Record that n more samples were consumed; roll over to the next epoch at the end."""
        self.consumed += n
        if self.consumed >= self.per_rank:
            self.epoch += 1
            self.consumed = 0

    @property
    def epoch_progress(self) -> float:
        return self.epoch + self.consumed / self.per_rank

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "consumed": self.consumed, "seed": self.seed,
                "num_samples": self.num_samples, "world_size": self.world_size}

    def load_state_dict(self, state: dict) -> None:
        if state["num_samples"] != self.num_samples or state["world_size"] != self.world_size:
            # A different dataset or world size: the old position means nothing; start the
            # epoch the checkpoint was in from its beginning.
            self.epoch, self.consumed = state["epoch"], 0
            return
        self.epoch, self.consumed = state["epoch"], state["consumed"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class SeededSamples(Dataset):
    """Wraps a dataset so item (index, seed) is produced under a fixed seed.

    Why: sam3's VideoGroundingDataset keeps its own random.Random (`rng`) that advances with
    every item, and its transforms use the global generators. Reseeding both per item makes
    a sample's augmentation independent of worker count and of where a run resumed.
    The caller's global RNG state is restored afterwards so training randomness is untouched.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, seed = key
        saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        try:
            seed_everything(seed)
            rng = getattr(self.dataset, "rng", None)
            if isinstance(rng, random.Random):
                rng.seed(seed)
            return self.dataset[index]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])
