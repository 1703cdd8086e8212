from __future__ import annotations

import pytest
import torch

from gemmalab.data.mqar import MQARDataset
from gemmalab.data.packing import IGNORE


def test_targets_are_the_values_of_keys_queried_later():
    data = MQARDataset(n_items=50, seq_len=48, n_pairs=6, vocab_size=64, seed=0)
    for i in range(50):
        item = data[i]
        inputs, targets = item["input_ids"], item["targets"]
        pairs = dict(zip(inputs[0:12:2].tolist(), inputs[1:12:2].tolist(), strict=True))
        assert len(pairs) == 6 and all(1 <= k < 32 for k in pairs) and all(32 <= v < 64 for v in pairs.values())
        queried = (targets != IGNORE).nonzero().flatten()
        assert len(queried) == 6 and queried.min() >= 12
        assert sorted(inputs[queried].tolist()) == sorted(pairs)
        for pos in queried.tolist():
            assert targets[pos] == pairs[int(inputs[pos])]


def test_items_are_deterministic_and_differ_by_seed():
    a = MQARDataset(10, 32, 4, 64, seed=0)
    assert torch.equal(a[3]["input_ids"], MQARDataset(10, 32, 4, 64, seed=0)[3]["input_ids"])
    assert not torch.equal(a[3]["input_ids"], MQARDataset(10, 32, 4, 64, seed=1)[3]["input_ids"])


def test_impossible_sizes_are_refused():
    with pytest.raises(ValueError, match="data.n_pairs=8 needs data.seq_len >= 24"):
        MQARDataset(10, 20, 8, 64, seed=0)
