from __future__ import annotations

from gemmalab.data import DataConfig
from gemmalab.data.cache import token_cache
from gemmalab.data.embedded import embedded_documents, embedded_fingerprint, stdlib_files


def test_the_embedded_corpus_is_this_pythons_stdlib_one_document_per_file(tmp_path):
    docs = [d for batch in embedded_documents() for d in batch]
    assert len(docs) == len(stdlib_files()) > 300 and sum(map(len, docs)) > 5_000_000
    assert "def " in docs[0] + docs[1] and not any("\x00" in d for d in docs)  # the separator never occurs
    assert embedded_fingerprint().startswith("stdlib-py3.")
    cache = token_cache(DataConfig(max_tokens=1_000_000), tmp_path)
    assert cache.manifest["tokens"]["train"] > 900_000 and cache.manifest["tokens"]["val"] > 10_000
    assert int(cache.tokens("train").max()) < 256  # UTF-8 bytes
