"""The token cache: a source x tokenizer x token budget, tokenized once into memory-mapped shards.

    <cache_dir>/<source>-<tokenizer>-<key>/manifest.json   what was built, from what (see build_cache)
                                           train.bin, val.bin, test.bin   the token streams, uint16 or uint32
                                           train_counts.npy, ...   token frequencies, per split
    <cache_dir>/bpe<N>-<source key>/tokenizer.json          a `bpe:N` tokenizer, trained once per source

The key is a hash of everything the tokens depend on: the source's content fingerprint, the
tokenizer's identity, the budget and the split rule; every run, sweep job and rank asking for
the same data reads the same directory. A build holds a file lock (concurrent jobs build once)
and writes into a temporary directory that is renamed when complete, so a killed build leaves
nothing that looks complete. A directory whose manifest does not match its files is rebuilt,
never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from gemmalab.errors import ConfigError

from .config import DataConfig, split_budgets, split_of
from .sources import check_source, documents, source_fingerprint, source_tokens_bound
from .tokenizer import (
    BPE_TRAIN_CHARS,
    ByteTokenizer,
    LocalHFTokenizer,
    Tokenizer,
    bpe_size,
    load_saved,
    train_bpe,
)

FORMAT = 2  # 2: a test split (config.split_of)
SPLITS = ("train", "val", "test")
CONTENT = tuple(f"{s}{ext}" for ext in (".bin", "_counts.npy") for s in SPLITS)  # each one's sha256 in the manifest


def sha256_of(folder: Path, names: tuple[str, ...]) -> dict[str, str]:
    """Each file's content hash (~0.13 s per 200 MB here: the train split of 100M byte tokens)."""
    digests = {}
    for name in names:
        with (folder / name).open("rb") as f:
            digests[name] = hashlib.file_digest(f, "sha256").hexdigest()
    return digests


def content_problem(folder: Path, recorded: object, names: tuple[str, ...]) -> str | None:
    """Which file no longer holds what was built (overwritten in place, at the same size), or None."""
    if not isinstance(recorded, dict) or set(recorded) != set(names):
        return "its manifest has no content hashes (built by an older gemmalab)"
    changed = [name for name, digest in sha256_of(folder, names).items() if digest != recorded[name]]
    return f"{changed[0]} does not hold what was built (its sha256 differs from the manifest's)" if changed else None


def check_data(cfg: DataConfig, root: Path) -> None:
    """Everything about the data that can be refused before a job starts (raises ConfigError): the files'
    content, the hub's reachability when the cache is not built yet."""
    if cfg.source == "mqar":
        return
    if cfg.tokenizer != "bytes" and bpe_size(cfg.tokenizer) is None:
        load_saved(cfg.tokenizer)  # a saved tokenizer that cannot be read is refused here, in one line
    # whether the hub must be reachable: the sizes say a cache was built; opening it checks its contents
    built = cfg.source == "hf" and manifest_problem(root / (key := cache_key(cfg)), key, contents=False) is None
    check_source(cfg, cache_built=built)


def check_budget(cfg: DataConfig, sequences: int | None, root: Path) -> None:
    """Refuse (raises ConfigError) a run that needs more training sequences than its data holds, unless
    data.allow_repeat: from a built cache's own count, else from what the cache can at most hold (the
    training split's budget, the source's size), so nothing is built for a run that would repeat its data.
    `sequences`: what the run reads (None: a fast_dev_run or overfit_batches run, which reads a few)."""
    if cfg.source == "mqar" or cfg.allow_repeat or sequences is None:
        return
    key = cache_key(cfg)
    if manifest_problem(root / key, key, contents=False) is None:
        manifest = json.loads((root / key / "manifest.json").read_text())
        held = [(manifest["tokens"]["train"], f"its token cache holds {manifest['tokens']['train']:,} training tokens")]
    else:
        held = [(split_budgets(cfg)[None if cfg.val_split is None else "train"],
                 f"data.max_tokens={cfg.max_tokens:,} bounds what its token cache takes")]  # fmt: skip
        if (bound := source_tokens_bound(cfg)) is not None:
            held.append((bound[0], f"{bound[1]} holds at most {bound[0]:,} tokens"))
    tokens, what = min(held)
    if epochs_of(cfg, sequences, tokens) > 1:
        raise ConfigError(
            f"the run reads {sequences:,} training sequences of data.seq_len={cfg.seq_len} ({sequences * cfg.seq_len:,}"
            f" tokens: trainer.max_steps x data.batch_size x trainer.accumulate_grad_batches), but {what} (allowed: "
            "data.allow_repeat=true to train on repeated data, fewer steps, a larger data.max_tokens or source)"
        )


def epochs_of(cfg: DataConfig, sequences: int, train_tokens: int) -> float:
    """How many times a run reading `sequences` goes over a training split of `train_tokens` (packing.py)."""
    return sequences / max(1, (train_tokens - 1) // cfg.seq_len)


def data_changed(cfg: DataConfig, summary: dict | None) -> str | None:
    """How the source, or the way it is cut into splits, differs from what a run recorded (None: the same,
    or nothing recorded)."""
    recorded = (summary or {}).get("data/source")
    if cfg.source == "mqar" or recorded is None:
        return None
    if recorded != (now := source_fingerprint(cfg)):
        where = {"embedded": "the embedded corpus (this Python's stdlib)", "files": f"data.files={cfg.files}"}
        return f"was trained on data {recorded}, but {where.get(cfg.source, f'data.name={cfg.name!r}')} is now {now}"
    if (cache := summary.get("data/fingerprint")) != (key := cache_key(cfg)):
        return f"was trained on token cache {cache}, but the same data is now cut into {key} (an older split rule)"
    return None


def _digest(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def tokenizer_identity(cfg: DataConfig) -> str:
    if cfg.tokenizer == "bytes":
        return "bytes"
    if (n := bpe_size(cfg.tokenizer)) is not None:
        return f"bpe{n}-{_digest({'source': source_fingerprint(cfg), 'chars': BPE_TRAIN_CHARS, 'n': n})}"
    return f"hf-{load_saved(cfg.tokenizer).digest}"


def cache_key(cfg: DataConfig) -> str:
    """`<source>-<tokenizer>-<hash>`: the directory name of this data's token cache."""
    tokenizer = tokenizer_identity(cfg)
    fields = {
        "format": FORMAT, "source": source_fingerprint(cfg), "tokenizer": tokenizer, "max_tokens": cfg.max_tokens,
        "split": cfg.split, "val_split": cfg.val_split, "text_column": cfg.text_column,
    }  # fmt: skip
    if cfg.val_split is not None:  # the validation split's own budget (caches without one keep their keys)
        fields["val_max_tokens"] = split_budgets(cfg)["val"]
    return f"{cfg.source}-{tokenizer.split('-')[0]}-{_digest(fields)}"


@dataclass
class TokenCache:
    path: Path
    manifest: dict

    def tokens(self, split: str) -> np.ndarray:
        if self.manifest["tokens"][split] == 0:  # a source too small for every split (numpy cannot map 0 bytes)
            return np.zeros(0, dtype=self.manifest["dtype"])
        return np.memmap(self.path / f"{split}.bin", dtype=self.manifest["dtype"], mode="r")

    def counts(self, split: str) -> np.ndarray:
        return np.load(self.path / f"{split}_counts.npy")


def manifest_problem(path: Path, key: str, contents: bool = True) -> str | None:
    """Why the directory is not a complete cache for `key` (None: it is). `contents=False` skips reading
    every file for its hash: enough to know a cache was built, not that it can be trained on."""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return "no readable manifest.json"
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("key") != key:
        return f"its manifest is for other data ({str(manifest)[:80]})"
    try:
        expected = {split: manifest["tokens"][split] * np.dtype(manifest["dtype"]).itemsize for split in SPLITS}
    except (KeyError, TypeError):
        return "its manifest lacks the token counts or dtype"
    for split in SPLITS:
        size = (path / f"{split}.bin").stat().st_size if (path / f"{split}.bin").is_file() else -1
        if size != expected[split]:
            return f"{split}.bin holds {size} bytes, the manifest says {expected[split]}"
        if not (path / f"{split}_counts.npy").is_file():
            return f"{split}_counts.npy is missing"
    return content_problem(path, manifest.get("sha256"), CONTENT) if contents else None


def build_once(final: Path, problem: Callable[[], str | None], build: Callable[[Path], None], what: str) -> bool:
    """Build `final` unless it is complete; True when this process built it. Under a file lock, so
    concurrent processes build once; into a temporary directory renamed at the end, so a killed
    build leaves only that temporary directory (removed by the next build)."""
    if problem() is None:
        return False
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if (why := problem()) is None:  # another process built it while this one waited
            return False
        if final.exists():
            print(f"[gemmalab] {what} {final} does not match ({why}): rebuilding", file=sys.stderr)
            shutil.rmtree(final)
        for stale in final.parent.glob(f".{final.name}.tmp-*"):  # a killed build's: the lock says nobody else
            shutil.rmtree(stale, ignore_errors=True)
        tmp = final.parent / f".{final.name}.tmp-{socket.gethostname()}-{os.getpid()}"
        tmp.mkdir()
        build(tmp)
        os.replace(tmp, final)
    return True


def load_tokenizer(cfg: DataConfig, root: Path) -> Tokenizer:
    """The run's tokenizer; a `bpe:N` one is trained on first use and then read from the cache."""
    if cfg.tokenizer == "bytes":
        return ByteTokenizer()
    if (n := bpe_size(cfg.tokenizer)) is None:
        return load_saved(cfg.tokenizer)
    folder = root / tokenizer_identity(cfg)

    def problem() -> str | None:
        if not (folder / "tokenizer.json").is_file():
            return "no tokenizer.json"
        try:
            recorded = json.loads((folder / "manifest.json").read_text())["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            recorded = None
        return content_problem(folder, recorded, ("tokenizer.json", "tokenizer_config.json"))

    def build(tmp: Path) -> None:
        started = time.time()
        print(f"[gemmalab] training tokenizer {cfg.tokenizer} on {source_fingerprint(cfg)} -> {folder}")
        train_bpe(_training_text(cfg), n, tmp)
        digests = sha256_of(tmp, ("tokenizer.json", "tokenizer_config.json"))
        (tmp / "manifest.json").write_text(json.dumps({"sha256": digests}, indent=1) + "\n")
        print(f"[gemmalab] tokenizer {cfg.tokenizer} trained in {time.time() - started:.1f} s")

    build_once(folder, problem, build, "tokenizer")
    return LocalHFTokenizer(folder, name=cfg.tokenizer)


def _training_text(cfg: DataConfig) -> Iterator[str]:
    """The training split's documents, up to BPE_TRAIN_CHARS characters."""
    used, i = 0, 0
    for batch in documents(cfg, cfg.split):
        for text in batch:
            if split_of(i, cfg.val_split is not None) == "train":
                yield text
                used += len(text)
            i += 1
            if used >= BPE_TRAIN_CHARS:
                return


def token_cache(cfg: DataConfig, root: Path) -> TokenCache:
    """Open this data's cache, building it first if no complete one exists."""
    key = cache_key(cfg)
    path = root / key
    problem = lambda: manifest_problem(path, key)  # noqa: E731
    built = build_once(path, problem, lambda tmp: build_cache(cfg, load_tokenizer(cfg, root), key, tmp), "token cache")
    cache = TokenCache(path, json.loads((path / "manifest.json").read_text()))
    total = sum(cache.manifest["tokens"].values())
    if built:
        seconds = cache.manifest["build_seconds"]
        print(f"[gemmalab] token cache built: {total:,} tokens in {seconds:.1f} s "
              f"({total / max(seconds, 1e-9):,.0f} tokens/s) -> {path}")  # fmt: skip
    else:
        print(f"[gemmalab] token cache: {path} (built earlier)")
    budgets = cache.manifest.get("budgets", {})
    for split, reached in cache.manifest["budget_reached"].items():
        if not reached and split in (budgets if cfg.val_split is not None else ("train",)):  # the passes made
            what = f"the {split} split" if cfg.val_split is not None else "the source"
            budget, tokens = budgets.get(split, cfg.max_tokens), cache.manifest["tokens"]
            print(f"[gemmalab] {what} ran out before its budget of {budget:,} tokens: "
                  f"{tokens[split] if cfg.val_split is not None else total:,} tokens, all of it used")  # fmt: skip
    return cache


class _Stream:
    """One split being written: tokens appended to <split>.bin, their frequencies counted."""

    def __init__(self, path: Path, dtype: np.dtype, vocab_size: int, eos_id: int) -> None:
        self.file, self.dtype, self.eos = open(path, "wb"), dtype, np.array([eos_id], dtype=dtype)
        self.counts = np.zeros(vocab_size, dtype=np.int64)
        self.tokens = self.documents = 0

    def append(self, docs: list[np.ndarray]) -> None:
        """Each document followed by the end-of-text token."""
        if docs:
            joined = np.concatenate([part for doc in docs for part in (doc, self.eos)]).astype(self.dtype)
            self.file.write(joined.tobytes())
            self.counts += np.bincount(joined, minlength=len(self.counts))
            self.tokens += len(joined)
            self.documents += len(docs)


def build_cache(cfg: DataConfig, tokenizer: Tokenizer, key: str, out: Path) -> None:
    """Tokenize the source into `out`: documents in order, each followed by the end-of-text token, until
    each pass holds its budget (config.split_budgets; the document that crosses it included). The training
    split's documents go where config.split_of says (test, and validation without a split of its own)."""
    from tqdm.auto import tqdm

    dtype = np.dtype(np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32)
    streams = {s: _Stream(out / f"{s}.bin", dtype, tokenizer.vocab_size, tokenizer.eos_id) for s in SPLITS}
    started = time.time()
    print(f"[gemmalab] building token cache {key} ({cfg.source}, tokenizer {cfg.tokenizer}, "
          f"up to {cfg.max_tokens:,} tokens)")  # fmt: skip
    budgets = split_budgets(cfg)
    bar = tqdm(total=sum(budgets.values()), unit="tok", unit_scale=True, desc="token cache", disable=None)
    reached: dict[str, bool] = {}
    for only, budget in budgets.items():
        i, used = 0, 0
        for batch in documents(cfg, cfg.val_split if only == "val" else cfg.split):
            taken: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
            for tokens in tokenizer.encode_batch(batch):
                if used >= budget:
                    break
                taken["val" if only == "val" else split_of(i, only is not None)].append(tokens)
                used += len(tokens) + 1
                i += 1
            for s in SPLITS:
                streams[s].append(taken[s])
            bar.update(sum(len(t) + 1 for s in SPLITS for t in taken[s]))
            if used >= budget:
                break
        passed = {"train": ("train", "test"), "val": ("val",), None: SPLITS}[only]  # the splits this pass filled
        reached.update(dict.fromkeys(passed, used >= budget))
    bar.close()
    for s in SPLITS:
        streams[s].file.close()
        np.save(out / f"{s}_counts.npy", streams[s].counts)
    manifest = {
        "format": FORMAT, "key": key, "source": cfg.source, "source_fingerprint": source_fingerprint(cfg),
        "files": cfg.files, "name": cfg.name, "config": cfg.config, "split": cfg.split, "val_split": cfg.val_split,
        "text_column": cfg.text_column, "tokenizer": cfg.tokenizer, "tokenizer_identity": tokenizer_identity(cfg),
        "vocab_size": tokenizer.vocab_size, "eos_id": tokenizer.eos_id, "dtype": dtype.name,
        "budgets": {only or "all": n for only, n in budgets.items()},
        "budget_reached": reached,  # per split; False: the source ran out first
        "documents": {s: streams[s].documents for s in SPLITS}, "tokens": {s: streams[s].tokens for s in SPLITS},
        "build_seconds": time.time() - started, "built_on": socket.gethostname(), "sha256": sha256_of(out, CONTENT),
    }  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
