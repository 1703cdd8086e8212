"""The token cache: built once, shared, atomic, rebuilt when damaged, never read when it does not match."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from gemmalab.data import DataConfig
from gemmalab.data.cache import build_cache, build_once, cache_key, manifest_problem, token_cache
from gemmalab.errors import ConfigError

DOCS = [f"line {i}: " + "word " * (i % 7) for i in range(200)]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(DOCS) + "\n")
    return DataConfig(source="files", files=[str(path)], max_tokens=10**6)


def docs_of(cache, split: str) -> list[bytes]:
    return cache.tokens(split).astype(np.uint8).tobytes().split(b"\x00")[:-1]


def test_the_cache_holds_each_document_and_its_end_token_split_by_the_held_out_rule(tmp_path, corpus, capsys):
    cache = token_cache(corpus, tmp_path / "cache")
    assert docs_of(cache, "val") == [d.encode() for i, d in enumerate(DOCS) if i % 20 == 0]
    assert docs_of(cache, "test") == [d.encode() for i, d in enumerate(DOCS) if i % 20 == 10]
    assert docs_of(cache, "train") == [d.encode() for i, d in enumerate(DOCS) if i % 20 not in (0, 10)]
    m = cache.manifest
    assert m["dtype"] == "uint16" and m["documents"] == {"train": 180, "val": 10, "test": 10}
    assert m["tokens"]["train"] == sum(len(d) + 1 for d in docs_of(cache, "train"))
    assert m["budget_reached"] == {"train": False, "val": False, "test": False}
    for split in ("train", "val", "test"):
        assert cache.counts(split).sum() == m["tokens"][split]
    assert "the source ran out before its budget of 1,000,000 tokens" in capsys.readouterr().out


def test_a_second_run_reads_the_cache_the_first_built(tmp_path, corpus, capsys):
    first = token_cache(corpus, tmp_path / "cache")
    stamp = (first.path / "train.bin").stat().st_mtime_ns
    assert "building token cache" in capsys.readouterr().out
    again = token_cache(corpus, tmp_path / "cache")
    assert again.path == first.path and (again.path / "train.bin").stat().st_mtime_ns == stamp
    assert "(built earlier)" in capsys.readouterr().out
    smaller = token_cache(DataConfig(**{**corpus.__dict__, "max_tokens": 500}), tmp_path / "cache")
    assert smaller.path != first.path and all(smaller.manifest["budget_reached"].values())
    assert 500 <= sum(smaller.manifest["tokens"].values()) < 500 + 20  # the document that crosses it, whole


def test_concurrent_builders_build_once(tmp_path):
    """Three builders that have all seen the cache missing (a barrier holds each at its first look until the
    others have looked too): the lock lets one build; without it all three would."""
    built, final = [], tmp_path / "thing"
    all_looked, looked = threading.Barrier(3, timeout=30), threading.local()

    def build(tmp):
        (tmp / "done").write_text("x")
        built.append(tmp)

    def problem():
        missing = None if (final / "done").is_file() else "missing"
        if not getattr(looked, "once", False):
            looked.once = True
            all_looked.wait()
        return missing

    results = []

    def builder():
        results.append(build_once(final, problem, build, "x"))

    threads = [threading.Thread(target=builder) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, True] and len(built) == 1 and (final / "done").is_file()


def test_a_killed_build_leaves_nothing_that_looks_complete(tmp_path, corpus):
    root, key = tmp_path / "cache", cache_key(corpus)

    def killed(tmp):
        (tmp / "train.bin").write_bytes(b"\x01" * 100)
        raise KeyboardInterrupt  # as a kill would stop it: mid-build

    with pytest.raises(KeyboardInterrupt):
        build_once(root / key, lambda: manifest_problem(root / key, key), killed, "token cache")
    assert not (root / key).exists() and len(list(root.glob(f".{key}.tmp-*"))) == 1
    cache = token_cache(corpus, root)  # the next build removes the leftover and builds
    assert manifest_problem(cache.path, key) is None and not list(root.glob(f".{key}.tmp-*"))


@pytest.mark.parametrize("damage", ["truncate", "other_manifest", "no_manifest"])
def test_a_cache_that_does_not_match_its_manifest_is_rebuilt_never_read(tmp_path, corpus, damage, capsys):
    cache = token_cache(corpus, tmp_path / "cache")
    tokens = np.array(cache.tokens("train"))
    if damage == "truncate":
        with open(cache.path / "train.bin", "r+b") as f:
            f.truncate(100)
    elif damage == "other_manifest":
        manifest = {**cache.manifest, "key": "files-bytes-0000000000000000"}
        (cache.path / "manifest.json").write_text(json.dumps(manifest))
    else:
        (cache.path / "manifest.json").unlink()
    rebuilt = token_cache(corpus, tmp_path / "cache")
    assert "does not match" in capsys.readouterr().err
    assert np.array_equal(np.array(rebuilt.tokens("train")), tokens)


class WideVocabulary:
    """A tokenizer whose ids pass 2**16: each character's code point + 60,000."""

    name, vocab_size, eos_id = "wide", 70_000, 0

    def encode_batch(self, texts):
        return [np.array([60_000 + ord(c) for c in t], dtype=np.uint32) for t in texts]


def test_ids_beyond_uint16_are_stored_as_uint32(tmp_path, corpus):
    build_cache(corpus, WideVocabulary(), "k", tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    tokens = np.memmap(tmp_path / "train.bin", dtype=manifest["dtype"], mode="r")
    assert manifest["dtype"] == "uint32" and int(tokens.max()) == 60_000 + ord("w")


def test_a_streamed_dataset_fills_the_cache_up_to_the_budget(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "dataset").mkdir()
    pq.write_table(pa.table({"text": DOCS * 50}), tmp_path / "dataset" / "train.parquet")  # a local hub-style dataset
    cfg = DataConfig(source="hf", name=str(tmp_path / "dataset"), streaming=True, max_tokens=2000)
    cache = token_cache(cfg, tmp_path / "cache")
    assert cache.manifest["budget_reached"] == {"train": True, "val": True, "test": True}
    assert 2000 <= sum(cache.manifest["tokens"].values()) < 2100


def test_with_a_validation_split_max_tokens_is_the_training_budget_and_validation_has_its_own(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "dataset").mkdir()
    pq.write_table(pa.table({"text": DOCS * 50}), tmp_path / "dataset" / "train.parquet")
    pq.write_table(pa.table({"text": DOCS[:30]}), tmp_path / "dataset" / "validation.parquet")
    cfg = DataConfig(source="hf", name=str(tmp_path / "dataset"), val_split="validation", max_tokens=3000)
    manifest = token_cache(cfg, tmp_path / "cache").manifest
    tokens = manifest["tokens"]
    assert 3000 <= tokens["train"] + tokens["test"] < 3100  # the training split holds data.max_tokens, test cut from it
    assert 0 < tokens["test"] < tokens["train"] // 10
    assert 3000 // 20 <= tokens["val"] < 3000 // 20 + 100  # its own budget: max_tokens // 20 by default
    assert manifest["budgets"] == {"train": 3000, "val": 150}
    assert manifest["budget_reached"] == {"train": True, "val": True, "test": True}
    roomy = DataConfig(**{**cfg.__dict__, "val_max_tokens": 10**6})  # more than the split holds
    manifest = token_cache(roomy, tmp_path / "cache").manifest
    assert manifest["budget_reached"] == {"train": True, "val": False, "test": True}
    assert manifest["tokens"]["val"] > tokens["val"]
    assert "the val split ran out before its budget of 1,000,000 tokens" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="data.val_max_tokens=10 is not allowed without data.val_split"):
        DataConfig(val_max_tokens=10)


def test_a_cache_overwritten_in_place_or_with_a_file_cut_short_is_rebuilt_never_read(tmp_path, corpus, capsys):
    first = token_cache(corpus, tmp_path / "cache")
    original = first.tokens("train").copy()
    train = first.path / "train.bin"
    damaged = original.copy()
    damaged[: len(damaged) // 2] = damaged[0]  # half its blocks one token, the same size on disk
    train.write_bytes(damaged.tobytes())
    again = token_cache(corpus, tmp_path / "cache")
    assert "train.bin does not hold what was built (its sha256 differs" in capsys.readouterr().err
    assert np.array_equal(again.tokens("train"), original)  # rebuilt from the source, the same tokens
    counts = again.path / "train_counts.npy"
    counts.write_bytes(counts.read_bytes()[:40])  # a side file cut short
    token_cache(corpus, tmp_path / "cache")
    assert "train_counts.npy does not hold what was built" in capsys.readouterr().err
