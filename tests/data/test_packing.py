from __future__ import annotations

import pytest
import torch

from gemmalab.data.packing import PackedDataset, ResumableSampler


def test_packed_items_are_consecutive_chunks_with_shifted_targets():
    data = PackedDataset(torch.arange(100), seq_len=8)
    assert len(data) == 12  # (100 - 1) // 8
    item = data[3]
    assert item["input_ids"].tolist() == list(range(24, 32))
    assert item["targets"].tolist() == list(range(25, 33))


def test_too_short_a_stream_is_refused():
    with pytest.raises(ValueError, match="data.seq_len=64 needs more than the 10 tokens"):
        PackedDataset(torch.arange(10), seq_len=64)


def test_sampler_resumed_part_way_yields_the_rest_of_the_same_stream():
    full = list(ResumableSampler(n_items=7, total=30, seed=3))
    assert list(ResumableSampler(n_items=7, total=30, seed=3, start=11)) == full[11:]
    assert len(ResumableSampler(n_items=7, total=30, seed=3, start=11)) == 30  # Lightning counts from 11


def test_sampler_is_a_permutation_per_epoch_and_reshuffles():
    stream = list(ResumableSampler(n_items=7, total=21, seed=0))
    epochs = [stream[i : i + 7] for i in (0, 7, 14)]
    assert all(sorted(e) == list(range(7)) for e in epochs)
    assert epochs[0] != epochs[1]
    assert stream != list(ResumableSampler(n_items=7, total=21, seed=1))
