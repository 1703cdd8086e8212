"""Where documents come from (the embedded corpus, local files, a Hugging Face dataset), what their
content's fingerprint is, and the checks that refuse an unusable source before any job starts.

Local files are read through `datasets.load_dataset` in streaming mode (text: one document per
line; json / jsonl / parquet: one per record), so nothing is copied to Hugging Face's cache.
`data=hf` with `data.name` a local folder takes either kind of local Hugging Face dataset: a folder
of data files (`load_dataset(folder)`) or one written by `save_to_disk` (`load_from_disk(folder)`);
both are known by their content, every file's bytes, so a folder edited in place is new data.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from gemmalab.errors import ConfigError

from .config import DataConfig
from .embedded import embedded_documents, embedded_fingerprint, stdlib_files
from .tokenizer import bpe_size

FILE_BUILDERS = {".txt": "text", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
ROWS_PER_BATCH = 1000
CHUNK = 1 << 22  # bytes read at a time while fingerprinting


def documents(cfg: DataConfig, split: str) -> Iterator[list[str]]:
    """The documents of `split`, in batches, in the source's order."""
    if cfg.source == "embedded":
        yield from embedded_documents()
        return
    from datasets import load_dataset

    if cfg.source == "files":
        builder = FILE_BUILDERS[Path(cfg.files[0]).suffix]
        dataset = load_dataset(builder, data_files=list(cfg.files), split=split, streaming=True)
    elif saved_to_disk(cfg.name):
        dataset = saved_split(cfg, split)
    else:
        dataset = load_dataset(cfg.name, cfg.config, split=split, streaming=cfg.streaming)
    columns = dataset.column_names
    if columns is not None and cfg.text_column not in columns:
        raise ConfigError(f"data.text_column={cfg.text_column!r} is not a column of {cfg.name or cfg.files} "
                          f"(allowed: {', '.join(columns)})")  # fmt: skip
    for batch in dataset.iter(batch_size=ROWS_PER_BATCH):
        yield batch[cfg.text_column]


def source_fingerprint(cfg: DataConfig) -> str:
    """The source's content: every stdlib file, every local file's bytes (in order), every file of a local
    dataset folder (path and bytes); a hub dataset is known by its name and config only (its content is not
    read before the cache is built)."""
    if cfg.source == "embedded":
        return embedded_fingerprint()
    if cfg.source == "files":
        digest = hashlib.sha256()
        for path in cfg.files:
            digest.update(bytes.fromhex(inspect_file(path, cfg.text_column)))
        return f"files-{digest.hexdigest()[:16]}"
    if is_local_folder(cfg.name):
        folder, digest = Path(cfg.name), hashlib.sha256()
        for path in folder_files(folder):
            digest.update(path.relative_to(folder).as_posix().encode() + b"\x00" + bytes.fromhex(file_sha256(path)))
        return f"hfdir-{digest.hexdigest()[:16]}"
    return f"hf-{cfg.name}-{cfg.config}"


def source_tokens_bound(cfg: DataConfig) -> tuple[int, str] | None:
    """At most how many tokens the byte tokenizer or a `bpe:N` one (byte-level: a token holds >= 1 byte) can
    make of the whole source, from its files' sizes alone, and what that is; None where sizes say nothing (a
    hub dataset, parquet's compressed columns, another tokenizer)."""
    if cfg.tokenizer != "bytes" and bpe_size(cfg.tokenizer) is None:
        return None
    if cfg.source == "embedded":  # each file one document: its UTF-8 bytes and an end-of-text token
        return embedded_bytes() + len(stdlib_files()), "the embedded corpus"
    if cfg.source == "files" and all(Path(f).suffix != ".parquet" for f in cfg.files):
        # text: each line's bytes, its newline's place taken by end-of-text; json: a record's text is no
        # longer than the record, which has room for the end-of-text token in its own punctuation
        return sum(os.stat(f).st_size + 1 for f in cfg.files), f"data.files ({len(cfg.files)} file(s))"
    return None


@functools.cache
def embedded_bytes() -> int:
    """The embedded corpus's size: stat'ed once per process (a sweep's preflight asks for every job)."""
    return sum(p.stat().st_size for p in stdlib_files())


def is_local_folder(name: str | None) -> bool:
    return name is not None and Path(name).is_dir()


def saved_to_disk(name: str | None) -> bool:
    """A folder `Dataset.save_to_disk` (state.json) or `DatasetDict.save_to_disk` (dataset_dict.json) wrote."""
    return is_local_folder(name) and any((Path(name) / f).is_file() for f in ("state.json", "dataset_dict.json"))


def folder_files(folder: Path) -> list[Path]:
    """Every file of a dataset folder, in path order; hidden ones (.git, .cache) are not data."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(folder).parts))  # fmt: skip


def file_sha256(path: Path) -> str:
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """Read once per (file, size, mtime) in a process: a sweep's jobs validate the same files."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def saved_split(cfg: DataConfig, split: str):  # -> datasets.Dataset
    """A split of a `save_to_disk` folder: the DatasetDict's split of that name, or the one Dataset it holds
    (which has no other split: data.val_split is refused for it by check_saved)."""
    from datasets import DatasetDict, load_from_disk

    dataset = load_from_disk(cfg.name)
    return dataset[split] if isinstance(dataset, DatasetDict) else dataset


def check_saved(cfg: DataConfig) -> None:
    """A `save_to_disk` folder: its splits and columns, read from its own files (memory-mapped, no copy)."""
    from datasets import DatasetDict, load_from_disk

    if cfg.config is not None:
        raise ConfigError(f"data.config={cfg.config!r} is not allowed with a save_to_disk folder ({cfg.name}) "
                          "(allowed: null; a saved dataset has no configs)")  # fmt: skip
    dataset = load_from_disk(cfg.name)
    if isinstance(dataset, DatasetDict):
        for key, split in (("data.split", cfg.split), ("data.val_split", cfg.val_split)):
            if split is not None and split not in dataset:
                raise ConfigError(f"{key}={split!r} is not a split of {cfg.name} (allowed: {', '.join(dataset)})")
        columns = dataset[cfg.split].column_names
    else:
        if cfg.val_split is not None:
            raise ConfigError(f"data.val_split={cfg.val_split!r} is not allowed: {cfg.name} holds one Dataset, "
                              "no splits (allowed: null: every 20th document is held out)")  # fmt: skip
        columns = dataset.column_names
    if cfg.text_column not in columns:
        raise ConfigError(f"data.text_column={cfg.text_column!r} is not a column of {cfg.name} "
                          f"(allowed: {', '.join(columns)})")  # fmt: skip


def check_source(cfg: DataConfig, cache_built: bool) -> None:
    """Refuse, in one line naming the file and the cause, a source no cache can be built from. A hub
    dataset needs the network only when its cache is not built yet."""
    if cfg.source == "files":
        for path in cfg.files:
            inspect_file(path, cfg.text_column)
        if len({FILE_BUILDERS[Path(f).suffix] for f in cfg.files}) > 1:
            raise ConfigError(f"data.files={cfg.files} mixes file types (allowed: one of text, json / jsonl, parquet)")
    elif saved_to_disk(cfg.name):
        check_saved(cfg)
    elif cfg.source == "hf" and not cache_built:
        check_hub_reachable(cfg.name)


def inspect_file(path: str, text_column: str) -> str:
    """The file's sha256 (hex); raises ConfigError when it cannot be a text source."""
    stat = os.stat(path)
    return _inspect(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, text_column)


@functools.lru_cache(maxsize=1024)
def _inspect(path: str, size: int, mtime_ns: int, text_column: str) -> str:
    """Read once per (file, size, mtime): sha256, and for text formats every byte checked as UTF-8."""
    suffix = Path(path).suffix

    def refuse(cause: str) -> ConfigError:
        return ConfigError(f"data.files entry {path!r} {cause}")

    if suffix not in FILE_BUILDERS:
        raise refuse(f"has an unknown type (allowed: {', '.join(FILE_BUILDERS)})")
    if size == 0:
        raise refuse("is empty (allowed: a file with at least one document)")
    if suffix == ".txt" and text_column != "text":
        raise refuse(f"is plain text, read as the column 'text' (data.text_column={text_column!r} not allowed)")
    digest, decoder, offset = hashlib.sha256(), codecs.getincrementaldecoder("utf-8")(), 0
    with open(path, "rb") as f:
        if suffix == ".parquet" and f.read(4) != b"PAR1":
            raise refuse("is not a parquet file (it does not start with PAR1)")
        f.seek(0)
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            if suffix != ".parquet":
                if (nul := chunk.find(b"\x00")) >= 0:
                    raise refuse(f"is binary, not text (a NUL byte at offset {offset + nul}; allowed: UTF-8 text)")
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as err:
                    raise refuse(f"is not UTF-8 (byte 0x{chunk[err.start]:02x} at offset {offset + err.start}; "
                                 "allowed: UTF-8 text, e.g. converted with iconv -t utf-8)") from None  # fmt: skip
            offset += len(chunk)
    _check_column(path, suffix, text_column)
    return digest.hexdigest()


def _check_column(path: str, suffix: str, text_column: str) -> None:
    columns: list[str] | None = None
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        columns = pq.read_schema(path).names
    elif suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            first = next((line for line in f if line.strip()), "")
        try:
            record = json.loads(first)
        except json.JSONDecodeError:
            raise ConfigError(f"data.files entry {path!r} is not JSON lines (its first line does not parse)") from None
        columns = list(record) if isinstance(record, dict) else []
    if columns is not None and text_column not in columns:
        raise ConfigError(f"data.text_column={text_column!r} is not a column of {path!r} "
                          f"(allowed: {', '.join(columns) or 'none: records are not objects'})")  # fmt: skip


def check_hub_reachable(name: str, timeout: float = 3.0) -> None:
    """A hub dataset without a network fails here at once, not after datasets' minute of retries."""
    if Path(name).exists() or os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return  # a local dataset, or datasets reads its own cache
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host = url.hostname or "huggingface.co"
    try:
        socket.create_connection((host, url.port or 443), timeout=timeout).close()
    except OSError as err:
        raise ConfigError(
            f"data.name={name!r} needs the Hugging Face Hub, which this machine cannot reach ({host}: "
            f"{err.strerror or err}) (allowed: local files, a dataset directory, a token cache already built, "
            "or HF_DATASETS_OFFLINE=1 with the dataset in Hugging Face's cache)"
        ) from None
