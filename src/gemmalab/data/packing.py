"""Packed fixed-length sequences: one long token stream cut into (seq_len + 1)-token chunks."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Sampler

IGNORE = -100  # target value that carries no loss


class PackedDataset(Dataset):
    """Item i is (input_ids, targets) from the i-th non-overlapping chunk; targets are inputs shifted by one."""

    def __init__(self, tokens: torch.Tensor, seq_len: int) -> None:
        n_chunks = (len(tokens) - 1) // seq_len
        if n_chunks < 1:
            raise ValueError(f"data.seq_len={seq_len} needs more than the {len(tokens)} tokens available")
        self.tokens, self.seq_len, self.n_chunks = tokens, seq_len, n_chunks

    def __len__(self) -> int:
        return self.n_chunks

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        chunk = self.tokens[i * self.seq_len : (i + 1) * self.seq_len + 1]
        return {"input_ids": chunk[:-1], "targets": chunk[1:]}


class ResumableSampler(Sampler[int]):
    """A seeded reshuffle of the dataset every epoch, as one stream of `total` samples that can start
    part-way: a run resumed at optimizer step s starts at sample s * batch_size and sees exactly
    the batches the uninterrupted run saw.

    Its length is always the whole stream's: Lightning restores how many batches of the epoch were
    done and counts on from there, so the epoch ends when the stream does."""

    def __init__(self, n_items: int, total: int, seed: int, start: int = 0) -> None:
        self.n_items, self.total, self.seed, self.start = n_items, total, seed, start

    def __len__(self) -> int:
        return self.total

    def __iter__(self):
        epoch, order = -1, None
        for j in range(self.start, self.total):
            if j // self.n_items != epoch:
                epoch = j // self.n_items
                order = torch.randperm(self.n_items, generator=torch.Generator().manual_seed(self.seed + epoch))
            yield int(order[j % self.n_items])
