from __future__ import annotations

from gemmalab.data.embedded import embedded_corpus


def test_embedded_corpus_is_large_deterministic_and_split():
    train, val, fingerprint = embedded_corpus()
    assert len(train) >= 1_000_000 and len(val) >= 100_000
    assert int(train.max()) < 256 and int(train.min()) >= 0
    assert fingerprint.startswith("stdlib-py3.")
    embedded_corpus.cache_clear()
    train2, val2, fingerprint2 = embedded_corpus()
    assert fingerprint2 == fingerprint and (train2 == train).all() and (val2 == val).all()
    text = bytes(train[:20000].tolist()).decode("utf-8", errors="replace")
    assert "def " in text and "import" in text  # real Python source


def test_a_smaller_budget_gives_a_different_fingerprint():
    _, _, small = embedded_corpus(200_000)
    _, _, full = embedded_corpus()
    assert small != full
