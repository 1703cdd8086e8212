"""Validate every job of a (multi)run before the first one trains.

Hydra composes and launches jobs one after another, so a bad value in the seventh
job of a sweep would surface only after six have trained. Here each job's config is
composed up front with Hydra's own override parser and sweeper expansion, and built
into the config objects a job uses; the first bad job raises ConfigError.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl  # internals: hydra-core pinned to 1.3.x
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import create_config_search_path, get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, OmegaConfBaseException, ValidationError

from gemmalab.data import DataConfig
from gemmalab.data.cache import data_changed
from gemmalab.errors import ConfigError
from gemmalab.schema import LOGGER_KINDS, SECTIONS, TOP_LEVEL_KEYS, register

from .derived import job_config
from .identity import run_identity, run_name
from .slurm import check_request, check_submission, is_slurm
from .spec import JobSpec
from .store import RunDir, readable_summary


@dataclass
class Plan:
    """What the command line asks for: how many jobs, the keys they vary (None: a single run), the run
    store they share, the group they name (None: a new one, store.new_group) and whether a SLURM cluster
    runs them (hydra/launcher=slurm | slurm_cpu)."""

    jobs: int
    swept: set[str] | None
    run_root: str
    group: str | None
    ablation: str | None
    slurm: bool = False
    tune: dict = field(default_factory=dict)  # the jobs' tune section (gemmalab/tune.py)
    lrs: list[float] = field(default_factory=list)  # the jobs' optim.lr values
    seeds: list[int] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)  # each job's run (runs/identity.py), in job order


# Hydra's flags that print something (help, the config, the defaults tree, completion) and run no job
PRINTING_FLAGS = ("help", "hydra_help", "cfg", "info", "shell_completion")


def command_line(argv: list[str]) -> argparse.Namespace:
    """Hydra's own parse of the command line: its flags (--multirun, --cfg, --config-name, ...) and the
    overrides. `--version` prints Hydra's version and exits here, as Hydra does."""
    return get_args_parser().parse_args(argv)


def runs_jobs(args: argparse.Namespace) -> bool:
    return not any(getattr(args, flag) for flag in PRINTING_FLAGS)


def search_path(args: argparse.Namespace) -> list[str]:
    """--config-dir DIR as Hydra reads it: one more place to find configs (an override for compose)."""
    return [f"hydra.searchpath=[file://{Path(args.config_dir).resolve()}]"] if args.config_dir else []


def job_overrides(args: argparse.Namespace, config_dir: Path) -> tuple[list[list[str]], set[str] | None, bool]:
    """The override list of each job the command line asks for (one list without -m), the keys the sweep
    varies (None for a single run) and whether SLURM runs them (its request checked against its nodes)."""
    overrides = list(args.overrides)
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(config_dir.resolve())))
    parser = OverridesParser.create(config_loader=loader)  # glob() needs the groups' options
    given = parser.parse_overrides(overrides)
    for override in given:  # Hydra would compose the group's options in turn
        if override.key_or_group == "logger" and isinstance(override.value(), list):
            raise ConfigError(f"{override.input_line} is not allowed (allowed: one of {', '.join(LOGGER_KINDS)}; the "
                              "run store's own log is always written beside it)")  # fmt: skip
    if not args.multirun:
        if sweeps := [o for o in given if o.is_sweep_override()]:
            raise ConfigError(f"{sweeps[0].input_line} is a sweep, but there is no --multirun (allowed: add -m "
                              "to sweep over it; key=[a,b] for a list, key='a,b' for a string)")  # fmt: skip
        if studies := [o for o in overrides if o.startswith("+ablation=")]:
            raise ConfigError(f"{studies[0]} is a study, which is a sweep (allowed: python sweep.py -m {studies[0]})")
        return [overrides], None, False
    fixed = [o for o in given if not o.is_sweep_override()]
    with initialize_config_dir(str(config_dir.resolve()), version_base="1.3"):
        base = compose(args.config_name or "config", [o.input_line for o in fixed] + search_path(args),
                       return_hydra_config=True)  # fmt: skip
    if slurm := is_slurm(base.hydra.launcher):
        check_request(base.hydra.launcher)
        check_submission(base.hydra.launcher)
    params = base.hydra.sweeper.get("params") or {}
    study = [f"{k}={v}" for k, v in params.items()]
    parsed = parser.parse_overrides(study + overrides)
    swept = {o.key_or_group for o in parsed if o.is_sweep_override()}
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [job for batch in batches for job in batch], swept, slurm


# OmegaConf's names for the types a schema field refused a value for
_EXPECTED = {"Float": "a number", "Integer": "an integer", "Boolean": "true or false", "String": "text"}


def hydra_message(err: Exception) -> str:
    """One line for a composition error: a value the schema's type refuses reads like gemmalab's own
    messages (`optim.lr='fast' is not allowed (allowed: a number)`); anything else, Hydra's text."""
    cause = err.__cause__ or err
    if isinstance(err, MissingConfigException) and err.options is not None:  # not Hydra's whole search path
        return f"{err.missing_cfg_file.replace('/', '=', 1)} is not allowed (allowed: {', '.join(err.options)})"
    key, value = getattr(cause, "full_key", None), getattr(cause, "value", None)
    if isinstance(cause, ConfigAttributeError) and key:
        allowed = SECTIONS.get(key.split(".")[0], TOP_LEVEL_KEYS)
        return f"{key} is not a known setting (allowed: {', '.join(allowed)})"
    if isinstance(cause, ValidationError) and key:
        expected = next((text for name, text in _EXPECTED.items() if f"converted to {name}" in str(cause)), None)
        if expected:
            return f"{key}={value!r} is not allowed (allowed: {expected})"
    return " ".join(str(err).split())


def validate_all_jobs(argv: list[str], config_dir: Path) -> Plan:
    """Compose and validate each job; returns the plan. Raises ConfigError.
    Jobs that differ only in their seed are composed once (a compose takes ~0.2 s; a study has 3 seeds
    per setting) and given each seed before interpolations are resolved, as Hydra would."""
    register()
    GlobalHydra.instance().clear()
    parser = OverridesParser.create()
    args = command_line(argv)
    try:
        jobs, swept, slurm = job_overrides(args, config_dir)
        composed: dict[tuple[str, ...], DictConfig] = {}
        shared: set[tuple[str, str | None, str | None]] = set()
        tune, lrs, seed_values, run_ids = {}, set(), set(), []
        with initialize_config_dir(str(config_dir.resolve()), version_base="1.3"):
            for overrides in jobs:
                seeds = [o for o in overrides if o.split("=", 1)[0] == "seed"]
                rest = tuple(o for o in overrides if o not in seeds)
                if rest not in composed:
                    composed[rest] = compose(args.config_name or "config", [*rest, *search_path(args)])
                job = composed[rest].copy()
                for seed in seeds:
                    job.seed = parser.parse_override(seed).value()
                try:
                    config = job_config(job)
                    spec = JobSpec.from_config(config, here=not slurm)  # a cluster's jobs run on its machines
                    run_id = run_identity(config)
                    check_same_data(RunDir(config["run_root"], run_id), spec.data,
                                    run_name(overrides, config["seed"], swept))  # fmt: skip
                except ConfigError as err:
                    raise ConfigError(f"{err} [job: {' '.join(overrides) or 'defaults'}]") from None
                shared.add((config["run_root"], config["group"], config["ablation"]))
                tune = config["tune"]
                lrs.add(config["optim"]["lr"])
                seed_values.add(config["seed"])
                run_ids.append(run_id)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(hydra_message(err)) from None
    finally:
        GlobalHydra.instance().clear()
    if len(shared) > 1:  # one sweep directory holds the sweep's members and its stop
        raise ConfigError(f"run_root, group and ablation differ between the jobs ({sorted(shared, key=str)[:2]}) "
                          "(allowed: one run_root and group per sweep)")  # fmt: skip
    ((run_root, group, ablation),) = shared
    return Plan(len(jobs), swept, run_root, group, ablation, slurm, tune, sorted(lrs), sorted(seed_values), run_ids)


def check_same_data(run: RunDir, data: DataConfig, name: str) -> None:
    """Refuse a run whose recorded data differs from what its config now reads (a local dataset edited in
    place): its run id is its config's, so the new data would resume or skip the old run."""
    if change := data_changed(data, readable_summary(run)):
        raise ConfigError(f"run {run.run_id} ({name}) {change} (allowed: the data it was trained on; for new runs "
                          f"on the new data, another run_root=..., or remove {run.path})")  # fmt: skip
