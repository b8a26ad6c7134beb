"""Deterministic batches: which images, and which augmentation seed, iteration by iteration.

Batch k of a run is a pure function of (seed, k, rank, world size): images are drawn epoch by epoch from
a seeded permutation, split across ranks like ``DistributedSampler`` (the epoch acts as its
``set_epoch``), and each sample carries its own augmentation seed. A run resumed at iteration k
therefore sees exactly the batches an uninterrupted run sees, whatever the number of loader workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch


class IterationBatchSampler(torch.utils.data.Sampler):
    """Yields, for iterations ``start .. stop - 1``, lists of ``(index, sample_seed)`` for this rank."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int, stop: int, rank: int = 0, world: int = 1):
        if n < 1:
            raise ValueError("the training set is empty")
        self.n, self.batch, self.seed, self.start, self.stop = n, batch_size, seed, start, stop
        self.rank, self.world = rank, world
        self._cache: tuple[int, list[int]] | None = None

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def _epoch_order(self, epoch: int) -> list[int]:
        if self._cache is None or self._cache[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(self.n, generator=g).tolist()
            per_rank = -(-self.n // self.world)
            order += order[: per_rank * self.world - self.n]  # pad like DistributedSampler
            self._cache = (epoch, order[self.rank :: self.world])
        return self._cache[1]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        per_epoch = len(self._epoch_order(0))
        for it in range(self.start, self.stop):
            picks = []
            for j in range(self.batch):
                pos = it * self.batch + j
                epoch, offset = divmod(pos, per_epoch)
                index = self._epoch_order(epoch)[offset]
                picks.append((index, (self.seed * 1_000_003 + pos) * self.world + self.rank))
            yield picks


class SeededItems(torch.utils.data.Dataset):
    """``dataset[(index, seed)]`` = ``dataset[index]`` with torch's RNG seeded for its augmentations; the
    caller's RNG state is left untouched."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]
