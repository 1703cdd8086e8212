"""Packed fixed-length sequences read from a token stream (a memory-mapped cache file), and the
sampler that makes the order of those sequences a pure function of (seed, step, rank)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

IGNORE = -100  # target value that carries no loss


class PackedDataset(Dataset):
    """Item i is (input_ids, targets) from the i-th non-overlapping chunk; targets are inputs shifted by one.
    Only the chunk asked for is read: a memory-mapped stream stays on disk."""

    def __init__(self, tokens: np.ndarray, seq_len: int) -> None:
        n_chunks = (len(tokens) - 1) // seq_len
        if n_chunks < 1:
            raise ValueError(f"data.seq_len={seq_len} needs more than the {len(tokens)} tokens available")
        self.tokens, self.seq_len, self.n_chunks = tokens, seq_len, n_chunks

    def __len__(self) -> int:
        return self.n_chunks

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        chunk = torch.from_numpy(self.tokens[i * self.seq_len : (i + 1) * self.seq_len + 1].astype(np.int64))
        return {"input_ids": chunk[:-1], "targets": chunk[1:]}


class ResumableSampler(Sampler[int]):
    """A seeded reshuffle of the dataset every epoch, as one global stream of `total` samples that can
    start part-way: a run resumed at optimizer step s starts at sample s * batch_size and sees exactly
    the batches the uninterrupted run saw.

    Global batch k is samples k * batch_size .. (k + 1) * batch_size - 1; under DDP, rank r of
    world_size reads the r-th contiguous slice of it, so the ranks' batches are disjoint and together
    are the single-process stream. Its length is this rank's whole share: Lightning restores how many
    batches of the epoch were done and counts on from there, so the epoch ends when the stream does."""

    def __init__(
        self, n_items: int, total: int, seed: int, start: int = 0, batch_size: int = 1, rank: int = 0,
        world_size: int = 1,
    ) -> None:  # fmt: skip
        if batch_size % world_size:
            raise ValueError(f"data.batch_size={batch_size} is not divisible by the {world_size} devices "
                             f"(allowed: a multiple of {world_size}; it is the global batch)")  # fmt: skip
        self.n_items, self.total, self.seed, self.start = n_items, total, seed, start
        self.batch_size, self.world_size = batch_size, world_size
        self.share = batch_size // world_size
        self.lo = rank * self.share

    def __len__(self) -> int:
        return self.total // self.world_size

    def __iter__(self) -> Iterator[int]:
        epoch, order = -1, None
        for j in range(self.start, self.total):
            if not self.lo <= j % self.batch_size < self.lo + self.share:
                continue
            if j // self.n_items != epoch:
                epoch = j // self.n_items
                order = torch.randperm(self.n_items, generator=torch.Generator().manual_seed(self.seed + epoch))
            yield int(order[j % self.n_items])
