from __future__ import annotations

import numpy as np
import pytest
import torch

from gemmalab.data.packing import PackedDataset, ResumableSampler


def test_packed_items_are_consecutive_chunks_with_shifted_targets():
    data = PackedDataset(np.arange(100), seq_len=8)
    assert len(data) == 12  # (100 - 1) // 8
    item = data[3]
    assert item["input_ids"].tolist() == list(range(24, 32))
    assert item["targets"].tolist() == list(range(25, 33))


def test_too_short_a_stream_is_refused():
    with pytest.raises(ValueError, match="data.seq_len=64 needs more than the 10 tokens"):
        PackedDataset(np.arange(10), seq_len=64)


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


def test_ranks_read_disjoint_slices_whose_union_is_the_single_process_stream():
    single = list(ResumableSampler(n_items=50, total=60, seed=4, batch_size=6))
    ranks = [list(ResumableSampler(n_items=50, total=60, seed=4, batch_size=6, rank=r, world_size=3)) for r in range(3)]
    for step in range(10):  # global batch `step`: rank r holds its r-th third
        assert sum((r[2 * step : 2 * step + 2] for r in ranks), []) == single[6 * step : 6 * step + 6]
    assert len(ResumableSampler(n_items=50, total=60, seed=4, batch_size=6, rank=1, world_size=3)) == 20
    resumed = list(ResumableSampler(n_items=50, total=60, seed=4, start=6 * 7, batch_size=6, rank=2, world_size=3))
    assert resumed == ranks[2][2 * 7 :]
    with pytest.raises(ValueError, match="data.batch_size=6 is not divisible by the 4 devices"):
        ResumableSampler(n_items=50, total=60, seed=4, batch_size=6, world_size=4)


def test_a_packed_item_reads_only_its_chunk_of_a_memory_mapped_stream(tmp_path):
    np.arange(1000, dtype=np.uint16).tofile(tmp_path / "t.bin")
    data = PackedDataset(np.memmap(tmp_path / "t.bin", dtype=np.uint16, mode="r"), seq_len=10)
    assert data[5]["input_ids"].tolist() == list(range(50, 60)) and data[5]["targets"].dtype == torch.long
