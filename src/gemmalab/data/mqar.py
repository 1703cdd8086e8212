"""Multi-query associative recall (Zoology, arXiv 2312.04927) as a synthetic dataset.

Each sequence starts with n_pairs key-value pairs (k1 v1 k2 v2 ...); every key is
queried once later, at a random position among noise tokens, and the target at a
query position is that key's value. Loss and accuracy count query positions only.
Keys come from the lower half of the vocabulary, values from the upper half, and
noise from token 0. A local layer cannot retrieve a key further back than its
window: this task shows where local attention fails.

Each item also carries `distance`: at a query position t, t minus the position of the key
it repeats (0 elsewhere). The value sits right after the key, so a query at distance d can read
it through a local layer of window W exactly when d <= W (query t sees t-W+1..t).
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from .packing import IGNORE


class MQARDataset(Dataset):
    def __init__(self, n_items: int, seq_len: int, n_pairs: int, vocab_size: int, seed: int) -> None:
        if 3 * n_pairs > seq_len:
            raise ValueError(f"data.n_pairs={n_pairs} needs data.seq_len >= {3 * n_pairs} (pairs + queries)")
        if vocab_size // 2 - 1 < n_pairs:
            raise ValueError(f"data.n_pairs={n_pairs} needs model.vocab_size >= {2 * n_pairs + 2}")
        self.n_items, self.seq_len, self.n_pairs, self.vocab_size, self.seed = (
            n_items, seq_len, n_pairs, vocab_size, seed
        )  # fmt: skip

    def __len__(self) -> int:
        return self.n_items

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        half = self.vocab_size // 2
        keys = 1 + torch.randperm(half - 1, generator=g)[: self.n_pairs]
        values = half + torch.randint(0, self.vocab_size - half, (self.n_pairs,), generator=g)
        inputs = torch.zeros(self.seq_len, dtype=torch.long)
        targets = torch.full((self.seq_len,), IGNORE, dtype=torch.long)
        inputs[0 : 2 * self.n_pairs : 2], inputs[1 : 2 * self.n_pairs : 2] = keys, values
        slots = 2 * self.n_pairs + torch.randperm(self.seq_len - 2 * self.n_pairs, generator=g)[: self.n_pairs]
        inputs[slots], targets[slots] = keys, values
        distance = torch.zeros(self.seq_len, dtype=torch.long)
        distance[slots] = slots - torch.arange(0, 2 * self.n_pairs, 2)  # key j sits at position 2j
        return {"input_ids": inputs, "targets": targets, "distance": distance}


BUCKETS_PER_SEQUENCE = 16


def distance_buckets(seq_len: int, window: int) -> list[tuple[int, int]]:
    """Key-to-query distance buckets (lo, hi]: seq_len / 16 tokens wide, with the window as an edge of
    its own, so that distances a local layer reaches (d <= W) and those it cannot never share a bucket."""
    width = max(1, seq_len // BUCKETS_PER_SEQUENCE)
    edges = sorted({*range(0, seq_len, width), seq_len, *([window] if window < seq_len else [])})
    return list(zip(edges[:-1], edges[1:], strict=True))


def accuracy_by_distance(distance: torch.Tensor, correct: torch.Tensor, seq_len: int, window: int) -> dict[str, float]:
    """Query accuracy and query count per distance bucket (`val/accuracy_by_distance/<lo+1>-<hi>`,
    `val/queries_by_distance/<lo+1>-<hi>`; empty buckets left out) and on either side of the window
    (`val/accuracy_within_window`, `val/accuracy_beyond_window`). distance, correct: one entry per query."""
    correct = correct.float()
    out = {}
    for lo, hi in distance_buckets(seq_len, window):
        inside = (distance > lo) & (distance <= hi)
        if inside.any():
            out[f"val/accuracy_by_distance/{lo + 1}-{hi}"] = float(correct[inside].mean())
            out[f"val/queries_by_distance/{lo + 1}-{hi}"] = int(inside.sum())
    for name, side in (("within", distance <= window), ("beyond", distance > window)):
        if side.any():
            out[f"val/accuracy_{name}_window"] = float(correct[side].mean())
    return out
