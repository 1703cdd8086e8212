"""Tokenizers: a BPE trained here, deterministically; a saved Hugging Face tokenizer without transformers."""

from __future__ import annotations

import sys

import pytest

from gemmalab.data import DataConfig, LMDataModule
from gemmalab.data.cache import load_tokenizer
from gemmalab.data.tokenizer import LocalHFTokenizer, bpe_size, train_bpe, vocab_size_of
from gemmalab.errors import ConfigError
from gemmalab.runs.preflight import validate_all_jobs

from ..conftest import REPO

DOCS = [f"document number {i} says hello" for i in range(40)]
TEXTS = [f"def function_{i}(value):\n    return value * {i} + offset\n" for i in range(300)]


def test_bpe_training_is_deterministic_and_round_trips(tmp_path):
    train_bpe(iter(TEXTS), 600, tmp_path / "a")
    train_bpe(iter(TEXTS), 600, tmp_path / "b")
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()
    tok = LocalHFTokenizer(tmp_path / "a")
    assert tok.eos_id == 0 and 256 < tok.vocab_size <= 600
    (ids,) = tok.encode_batch(["def function_7(value): café"])
    assert len(ids) < len("def function_7(value): café") and int(ids.min()) > 0  # merges, no EOS inside
    assert tok._tok.decode(ids.tolist()) == "def function_7(value): café"  # byte-level: any text


def test_bpe_is_trained_once_per_source_and_n_and_the_model_vocabulary_follows_it(tmp_path, capsys):
    (tmp_path / "code.txt").write_text("".join(TEXTS))
    cfg = DataConfig(source="files", files=[str(tmp_path / "code.txt")], tokenizer="bpe:600")
    first = load_tokenizer(cfg, tmp_path / "cache")
    assert "training tokenizer bpe:600" in capsys.readouterr().out
    again = load_tokenizer(cfg, tmp_path / "cache")
    assert "training tokenizer" not in capsys.readouterr().out
    assert again.encode_batch(TEXTS[:3])[2].tolist() == first.encode_batch(TEXTS[:3])[2].tolist()
    assert vocab_size_of("bpe:600") == 600 and vocab_size_of("bytes") == 256

    (saved,) = (tmp_path / "cache").glob("bpe600-*/tokenizer.json")
    saved.write_bytes(saved.read_bytes()[:1000])  # cut short on disk: trained again, never parsed half
    retrained = load_tokenizer(cfg, tmp_path / "cache")
    err = capsys.readouterr().err
    assert "does not match (tokenizer.json does not hold what was built" in err and "rebuilding" in err
    assert retrained.encode_batch(TEXTS[:3])[2].tolist() == first.encode_batch(TEXTS[:3])[2].tolist()


@pytest.mark.parametrize("spec", ["bpe:", "bpe:12", "bpe:x"])
def test_a_malformed_bpe_size_is_refused(spec):
    with pytest.raises(ConfigError, match=r"allowed: bpe:N with N an integer >= 512"):
        bpe_size(spec)
    assert bpe_size("bytes") is None


def test_local_hf_tokenizer_needs_neither_network_nor_transformers(tmp_path, monkeypatch):
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
        assert tok.encode_batch([words])[0].tolist() == [vocab[w] for w in words.split()]

    (tmp_path / "docs.txt").write_text("\n".join(DOCS) + "\n")
    cfg = DataConfig(source="files", files=[str(tmp_path / "docs.txt")], tokenizer=str(tmp_path / "tok"), seq_len=8,
                     batch_size=2, val_batches=1)  # fmt: skip
    info = LMDataModule(cfg, seed=0, max_steps=3, vocab_size=64, cache_root=tmp_path / "cache").prepare()
    assert (info["data/train_tokens"], info["data/val_tokens"], info["data/test_tokens"]) == (36 * 6, 2 * 6, 2 * 6)
    assert vocab_size_of(str(tmp_path / "tok")) == len(vocab)
    with pytest.raises(ValueError, match="model.vocab_size=8 is smaller than the tokenizer's"):
        LMDataModule(cfg, seed=0, max_steps=3, vocab_size=8, cache_root=tmp_path / "cache").prepare()
    broken = tmp_path / "tok" / "tokenizer.json"
    broken.write_bytes(broken.read_bytes()[:200])  # a saved tokenizer cut short: refused in one line, naming it
    with pytest.raises(ConfigError, match=f"data.tokenizer='{tmp_path / 'tok'}' cannot be read .*EOF") as err:
        validate_all_jobs(["data=files", f"data.files=[{tmp_path / 'docs.txt'}]", f"data.tokenizer={tmp_path / 'tok'}",
                           f"run_root={tmp_path / 'r'}"], REPO / "conf")  # fmt: skip
    assert "\n" not in str(err.value)
