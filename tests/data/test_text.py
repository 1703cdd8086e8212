"""Hugging Face datasets and a local tokenizer, on local files only."""

from __future__ import annotations

import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from gemmalab.data import DataConfig, LMDataModule
from gemmalab.data.text import load_documents, tokenize_documents
from gemmalab.data.tokenizer import ByteTokenizer, LocalHFTokenizer

DOCS = [f"document number {i} says hello" for i in range(40)]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "a.txt").write_text("\n".join(DOCS[:20]) + "\n")
    (tmp_path / "b.txt").write_text("\n".join(DOCS[20:]) + "\n")
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"body": d}) + "\n" for d in DOCS))
    pq.write_table(pa.table({"text": DOCS}), tmp_path / "docs.parquet")
    return tmp_path


@pytest.mark.parametrize(
    "names, column", [(["a.txt", "b.txt"], "text"), (["docs.jsonl"], "body"), (["docs.parquet"], "text")]
)
def test_local_files_load_through_datasets(files, names, column):
    docs = list(load_documents(None, None, "train", [str(files / n) for n in names], column, streaming=False))
    assert docs == DOCS


def test_streaming_reads_the_same_documents(files):
    docs = load_documents(None, None, "train", [str(files / "docs.parquet")], "text", streaming=True)
    assert list(docs) == DOCS


def test_unknown_column_and_file_type_are_refused(files):
    with pytest.raises(ValueError, match="data.text_column='content' is not a column"):
        load_documents(None, None, "train", [str(files / "docs.parquet")], "content", streaming=False)
    with pytest.raises(ValueError, match="unknown types"):
        load_documents(None, None, "train", [str(files / "x.csv")], "text", streaming=False)


def test_every_twentieth_document_is_held_out():
    train, val = tokenize_documents(DOCS, ByteTokenizer(), max_tokens=10**6, split_val=True)
    held_out = bytes(val.tolist()).split(b"\x00")[:-1]
    assert held_out == [DOCS[0].encode(), DOCS[20].encode()]  # the embedded corpus's rule too
    assert len(train) + len(val) == sum(len(d) + 1 for d in DOCS)


def test_max_tokens_bounds_what_is_read():
    train, _ = tokenize_documents(DOCS, ByteTokenizer(), max_tokens=100, split_val=False)
    assert 100 <= len(train) < 100 + 40


def test_local_hf_tokenizer_needs_neither_network_nor_transformers(tmp_path, files, monkeypatch):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[EOS]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(sorted({w for d in DOCS for w in d.split()}))}}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="[EOS]", unk_token="[UNK]").save_pretrained(
        tmp_path / "tok"
    )
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "transformers", None)  # any import of it now fails
        tok = LocalHFTokenizer(str(tmp_path / "tok"))
        words = "document number 7 says hello"
        assert tok.vocab_size == len(vocab) and tok.eos_id == 0
        assert tok.encode(words) == [vocab[w] for w in words.split()]

    cfg = DataConfig(source="files", files=[str(files / "docs.parquet")], tokenizer=str(tmp_path / "tok"), seq_len=8,
                     batch_size=2, val_batches=1)  # fmt: skip
    info = LMDataModule(cfg, seed=0, max_steps=3, vocab_size=64).prepare()
    assert info["data/train_tokens"] == 38 * 6 and info["data/val_tokens"] == 2 * 6
    with pytest.raises(ValueError, match="model.vocab_size=8 is smaller than the tokenizer's"):
        LMDataModule(cfg, seed=0, max_steps=3, vocab_size=8).prepare()


def test_datamodule_batches_and_unigram_baseline():
    cfg = DataConfig(seq_len=32, batch_size=4, val_batches=2, max_tokens=300_000)
    dm = LMDataModule(cfg, seed=0, max_steps=5, vocab_size=256)
    info = dm.prepare()
    assert 2.5 < info["data/unigram_loss"] < 5.5  # bytes of Python source: a few nats per byte
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (4, 32) and torch.equal(batch["input_ids"][:, 1:], batch["targets"][:, :-1])
    assert len(dm.train_dataloader()) == 5 and len(dm.val_dataloader()) == 2
