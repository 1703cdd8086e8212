"""Documents from local files through Hugging Face datasets, and the checks that refuse a bad source."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gemmalab.data import DataConfig
from gemmalab.data.sources import check_hub_reachable, check_source, documents, source_fingerprint
from gemmalab.errors import ConfigError
from gemmalab.runs.preflight import validate_all_jobs

from ..conftest import REPO, TINY

DOCS = [f"document number {i} says hello" for i in range(40)]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "a.txt").write_text("\n".join(DOCS[:20]) + "\n")
    (tmp_path / "b.txt").write_text("\n".join(DOCS[20:]) + "\n")
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"body": d}) + "\n" for d in DOCS))
    pq.write_table(pa.table({"text": DOCS}), tmp_path / "docs.parquet")
    return tmp_path


def files_config(folder, *names: str, column: str = "text") -> DataConfig:
    return DataConfig(source="files", files=[str(folder / n) for n in names], text_column=column)


@pytest.mark.parametrize(
    "names, column", [(["a.txt", "b.txt"], "text"), (["docs.jsonl"], "body"), (["docs.parquet"], "text")]
)
def test_local_files_stream_through_datasets(files, names, column):
    cfg = files_config(files, *names, column=column)
    check_source(cfg, cache_built=False)
    assert [d for batch in documents(cfg, "train") for d in batch] == DOCS


def test_the_fingerprint_follows_the_files_content_not_their_names(files):
    before = source_fingerprint(files_config(files, "a.txt"))
    (files / "copy.txt").write_bytes((files / "a.txt").read_bytes())
    assert source_fingerprint(files_config(files, "copy.txt")) == before
    (files / "a.txt").write_text("edited\n")
    assert source_fingerprint(files_config(files, "a.txt")) != before


def write_bad(folder):
    (folder / "empty.txt").write_bytes(b"")
    (folder / "binary.txt").write_bytes(b"text\x00\x01\x02")
    (folder / "latin1.txt").write_bytes("caf\u00e9 cr\u00e8me\n".encode("latin-1"))
    (folder / "fake.parquet").write_text("not parquet")
    (folder / "rows.jsonl").write_text(json.dumps({"body": "x"}) + "\n")


@pytest.mark.parametrize(
    "names, column, message",
    [
        (["empty.txt"], "text", "empty.txt' is empty (allowed: a file with at least one document)"),
        (["binary.txt"], "text", "binary.txt' is binary, not text (a NUL byte at offset 4; allowed: UTF-8 text)"),
        (["latin1.txt"], "text", "latin1.txt' is not UTF-8 (byte 0xe9 at offset 3; allowed: UTF-8 text"),
        (["fake.parquet"], "text", "fake.parquet' is not a parquet file"),
        (["rows.jsonl"], "text", "data.text_column='text' is not a column of "),
        (["good.txt"], "body", "good.txt' is plain text, read as the column 'text'"),
    ],
)
def test_a_bad_file_is_refused_in_one_line(tmp_path, names, column, message):
    write_bad(tmp_path)
    (tmp_path / "good.txt").write_text("fine\n")
    with pytest.raises(ConfigError) as err:
        check_source(files_config(tmp_path, *names, column=column), cache_built=False)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_bad_file_stops_a_sweep_before_its_first_job(tmp_path):
    write_bad(tmp_path)
    with pytest.raises(ConfigError, match=r"latin1.txt' is not UTF-8 .* \[job: "):
        validate_all_jobs(["-m", *TINY, "seed=0,1", "data=files", f"data.files=[{tmp_path / 'latin1.txt'}]"],
                          REPO / "conf")  # fmt: skip


def test_mixed_file_types_are_refused(files):
    with pytest.raises(ConfigError, match=r"mixes file types \(allowed: one of text"):
        check_source(files_config(files, "a.txt", "docs.parquet"), cache_built=False)


def test_a_hub_dataset_without_a_network_fails_at_once(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ConfigError, match=r"data.name='wikitext' needs the Hugging Face Hub, which this machine "
                                          r"cannot reach \(127.0.0.1: "):  # fmt: skip
        check_hub_reachable("wikitext")


def test_a_dataset_folder_is_fingerprinted_by_its_files(tmp_path):
    folder = tmp_path / "dataset"
    folder.mkdir()
    pq.write_table(pa.table({"text": DOCS}), folder / "train.parquet")
    cfg = DataConfig(source="hf", name=str(folder))
    before = source_fingerprint(cfg)
    (folder / ".cache").mkdir()
    (folder / ".cache" / "lock").write_text("not data")  # hidden files are not the dataset
    assert source_fingerprint(cfg) == before
    pq.write_table(pa.table({"text": [d.upper() for d in DOCS[:10]]}), folder / "train.parquet")
    assert source_fingerprint(cfg) != before and source_fingerprint(cfg).startswith("hfdir-")
    assert [d for batch in documents(cfg, "train") for d in batch] == [d.upper() for d in DOCS[:10]]


def test_save_to_disk_folders_are_read_with_load_from_disk(tmp_path):
    from datasets import Dataset, DatasetDict

    one, two = tmp_path / "one", tmp_path / "two"
    Dataset.from_dict({"body": DOCS}).save_to_disk(str(one))
    DatasetDict({"train": Dataset.from_dict({"text": DOCS[:30]}),
                 "validation": Dataset.from_dict({"text": DOCS[30:]})}).save_to_disk(str(two))  # fmt: skip
    single = DataConfig(source="hf", name=str(one), text_column="body")
    check_source(single, cache_built=False)
    assert [d for batch in documents(single, "train") for d in batch] == DOCS
    split = DataConfig(source="hf", name=str(two), val_split="validation")
    check_source(split, cache_built=False)
    assert [d for batch in documents(split, "validation") for d in batch] == DOCS[30:]
    assert source_fingerprint(split).startswith("hfdir-") and source_fingerprint(split) != source_fingerprint(single)
    for cfg, message in [
        (DataConfig(source="hf", name=str(two), split="test"), "data.split='test' is not a split of"),
        (DataConfig(source="hf", name=str(one), text_column="body", val_split="validation"),
         "data.val_split='validation' is not allowed: "),
        (DataConfig(source="hf", name=str(one)), "data.text_column='text' is not a column of"),
        (DataConfig(source="hf", name=str(two), config="x"), "data.config='x' is not allowed with a save_to_disk"),
    ]:  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            check_source(cfg, cache_built=False)


def test_a_token_budget_the_source_cannot_fill_is_refused_before_any_cache(tmp_path):
    from gemmalab.data.cache import check_budget, token_cache

    (tmp_path / "a.txt").write_text("\n".join(DOCS) + "\n")  # 1,190 bytes: at most 1,191 tokens
    cfg = DataConfig(source="files", files=[str(tmp_path / "a.txt")], seq_len=16)
    with pytest.raises(ConfigError, match=r"the run reads 100 training sequences .* but data.files \(1 file\(s\)\) "
                                          r"holds at most 1,191 tokens \(allowed: data.allow_repeat=true"):  # fmt: skip
        check_budget(cfg, 100, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    check_budget(DataConfig(**{**cfg.__dict__, "allow_repeat": True}), 100, tmp_path / "cache")
    token_cache(cfg, tmp_path / "cache")  # once built, its own count decides
    check_budget(cfg, 66, tmp_path / "cache")
    with pytest.raises(ConfigError, match="but its token cache holds 1,071 training tokens"):  # 66 sequences of 16
        check_budget(cfg, 67, tmp_path / "cache")
