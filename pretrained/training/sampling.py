"""Training samplers whose order is a pure function of (seed, epoch), so resume can skip by index.

The order of epoch `e` is computed from its own generator seeded with
`seed + e`: it does not depend on the global RNG or on how many epochs ran
before, so a resumed run rebuilds the same order and starts `skip` indices in
without loading the skipped examples.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """Yields dataset indices for one epoch: shuffled, sequential or grouped by length.

    Args:
        num_samples: Length of the dataset.
        shuffle: Random order (`False`: 0, 1, 2, ...).
        seed: Base seed of the order; epoch `e` uses `seed + e`.
        lengths: Per-example lengths to group examples of similar length (implies shuffling
            within mega-batches of 50 batches, longest batch first).
        batch_size: Examples per batch (length grouping, and dealing batches out to processes).
        num_replicas / rank: Processes sharing the epoch (torchrun's world) and this one's index: batch
            `k` of the epoch's order goes to process `k % num_replicas`, as accelerate deals a
            single-process loader out, so one step of all processes sees the batch that one process
            with `num_replicas` times the batch size would. The order is first extended with its own
            beginning to a whole number of global batches, so every process gets as many.
    """

    def __init__(
        self,
        num_samples: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        lengths: Sequence[int] | None = None,
        batch_size: int = 1,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.num_samples = num_samples
        self.shuffle = shuffle
        self.seed = seed
        self.lengths = lengths
        self.batch_size = batch_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip(self, num_indices: int) -> None:
        """Start the next iteration `num_indices` into the epoch's order (applies once)."""
        self._skip = num_indices

    def epoch_indices(self, epoch: int) -> list[int]:
        if not self.shuffle and self.lengths is None:
            return list(range(self.num_samples))
        g = torch.Generator().manual_seed(self.seed + epoch)
        perm = torch.randperm(self.num_samples, generator=g).tolist()
        if self.lengths is None:
            return perm
        # length grouping: sort each mega-batch by length, longest first, and put the
        # batch holding the longest example first so an out-of-memory shows up at once
        mega = self.batch_size * 50
        groups = [
            sorted(perm[i : i + mega], key=lambda j: -self.lengths[j]) for i in range(0, len(perm), mega)
        ]
        batches = [g_[i : i + self.batch_size] for g_ in groups for i in range(0, len(g_), self.batch_size)]
        longest = max(range(len(batches)), key=lambda b: self.lengths[batches[b][0]])
        batches[0], batches[longest] = batches[longest], batches[0]
        return [i for b in batches for i in b]

    def _this_replica(self, indices: list[int]) -> list[int]:
        if self.num_replicas == 1:
            return indices
        step = self.batch_size * self.num_replicas
        total = -(-len(indices) // step) * step
        indices = (indices * (total // max(len(indices), 1) + 1))[:total]
        return [
            i
            for start in range(self.rank * self.batch_size, total, step)
            for i in indices[start : start + self.batch_size]
        ]

    def __iter__(self) -> Iterator[int]:
        indices = self._this_replica(self.epoch_indices(self.epoch))
        start, self._skip = self._skip, 0
        return iter(indices[start:])

    def __len__(self) -> int:
        if self.num_replicas == 1:
            return self.num_samples
        step = self.batch_size * self.num_replicas
        return -(-self.num_samples // step) * self.batch_size
