from __future__ import annotations

import pytest
import torch

from gemmalab.data.mqar import MQARDataset, accuracy_by_distance, distance_buckets
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


def test_distance_is_query_position_minus_key_position():
    data = MQARDataset(n_items=20, seq_len=40, n_pairs=5, vocab_size=64, seed=3)
    for i in range(20):
        item = data[i]
        inputs, distance = item["input_ids"], item["distance"]
        queried = (item["targets"] != IGNORE).nonzero().flatten().tolist()
        assert sorted((distance != 0).nonzero().flatten().tolist()) == queried
        for t in queried:
            key_position = inputs[:10].tolist().index(int(inputs[t]))  # keys sit at even positions < 2 * n_pairs
            assert distance[t] == t - key_position


def test_buckets_put_the_window_edge_between_two_buckets():
    assert distance_buckets(64, 16) == [(i, i + 4) for i in range(0, 64, 4)]
    assert distance_buckets(64, 18)[4:6] == [(16, 18), (18, 20)]
    assert distance_buckets(32, 100) == [(i, i + 2) for i in range(0, 32, 2)]  # a window past the sequence


def test_accuracy_by_distance_on_a_hand_made_batch():
    # eight queries at known distances; right for the near ones, wrong for all but one far one
    distance = torch.tensor([2, 3, 6, 8, 9, 16, 17, 40])
    correct = torch.tensor([True, True, True, False, True, True, False, True])
    got = accuracy_by_distance(distance, correct, seq_len=32, window=16)  # buckets of 2; 40 is past them all
    assert got == pytest.approx({
        "val/accuracy_by_distance/1-2": 1.0, "val/queries_by_distance/1-2": 1,
        "val/accuracy_by_distance/3-4": 1.0, "val/queries_by_distance/3-4": 1,
        "val/accuracy_by_distance/5-6": 1.0, "val/queries_by_distance/5-6": 1,
        "val/accuracy_by_distance/7-8": 0.0, "val/queries_by_distance/7-8": 1,
        "val/accuracy_by_distance/9-10": 1.0, "val/queries_by_distance/9-10": 1,
        "val/accuracy_by_distance/15-16": 1.0, "val/queries_by_distance/15-16": 1,
        "val/accuracy_by_distance/17-18": 0.0, "val/queries_by_distance/17-18": 1,
        "val/accuracy_within_window": 5 / 6,
        "val/accuracy_beyond_window": 0.5,
    })  # fmt: skip
