"""Hydra entry point: one job = one training run; then the closing summary.

    python sweep.py                                          # one run, embedded defaults
    python sweep.py -m attn.pattern=alt,full norm=dual,pre   # a 2x2 ablation
    python sweep.py -m +ablation=softcap                     # a named study from ablations/

Jobs are validated before the first trains; the plan goes to the sweep's directory (runs/sweep_dir.py),
a job trains one run directory (runs/job.py). SIGTERM / Ctrl-C: jobs stop after their step, saved; rerun resumes.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from gemmalab.errors import ConfigError, RunBusy
from gemmalab.runs.console import closing_summary, job_log, quiet
from gemmalab.runs.derived import job_config
from gemmalab.runs.preflight import Plan, command_line, runs_jobs, validate_all_jobs
from gemmalab.runs.slurm import quiet_without_accounting
from gemmalab.runs.store import new_group
from gemmalab.runs.sweep_dir import SweepDir
from gemmalab.schema import register
from gemmalab.train.cluster import follows_rank_zero
from gemmalab.tune import tuned

register()
CONF = Path(__file__).resolve().parent / "conf"  # absolute: main() also runs where sweep.py is imported


@hydra.main(config_path=str(CONF), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # what trains (Lightning, W&B) loads in the job, not on the way to --help or a refusal
    from gemmalab.runs.job import run_job
    from gemmalab.runs.launchers import share_cores
    from gemmalab.runs.train_run import follow_rank_zero, lead_ranks

    if follows_rank_zero():  # a task > 0 of a multi-task submitit job: train beside rank 0
        return follow_rank_zero()
    quiet()  # a submitit job's process, which launch() never ran in
    lead_ranks()  # ranks torchrun or SLURM started: the others train each run this one trains
    share_cores(HydraConfig.get().launcher, SweepDir(cfg.run_root, cfg.group))
    hydra_cfg = HydraConfig.get()
    with job_log(Path(hydra_cfg.runtime.output_dir) / f"{hydra_cfg.job.name}.log"):
        try:
            run_job(job_config(cfg), list(hydra_cfg.overrides.task), cfg.group)
        except (ConfigError, RunBusy) as err:  # recorded as the job's failure; the sweep goes on
            print(f"error: {err}", file=sys.stderr)


def launch(argv: list[str], plan: Plan | None = None) -> int:
    """The sweep the command line asks for, validated (unless its plan is given: analysis/paper.py validates
    every study first), planned, run; its exit code (2: refused before any job)."""
    quiet()
    sys.argv = argv  # Hydra's main reads sys.argv
    if not runs_jobs(command_line(argv[1:])):  # --help, --cfg job, --info, -sc, --version: Hydra's own output
        return main() or 0
    try:
        plan = plan or validate_all_jobs(argv[1:], config_dir=CONF)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\n[gemmalab] interrupted while composing the jobs: nothing started", file=sys.stderr)
        return 128 + signal.SIGINT
    if plan.tune.get("enabled") and plan.tune.get("stage") is None:
        return tuned(argv, plan, launch)
    if plan.group is None:  # every process of the sweep reads its group from its config
        argv.append(f"group={new_group(plan.ablation)}")
    sweep = SweepDir(plan.run_root, plan.group or argv[-1].split("=", 1)[1])
    sweep.plan(plan.jobs, plan.swept, shlex.join(["python", Path(argv[0]).name, *argv[1:]]))
    if plan.slurm:
        quiet_without_accounting()
    for signum in (signal.SIGTERM, signal.SIGINT):  # every job stops after its step (SweepDir.request_stop)
        signal.signal(signum, lambda signum, _: sweep.request_stop(signum))
    try:
        main()
    except (Exception, SystemExit) as err:  # the launcher broke under its jobs (a worker killed): say what they did
        if sweep.members_path.exists() and getattr(err, "code", 1) not in (0, None):
            return max(closing_summary(sweep), 1)
        raise
    return closing_summary(sweep)


if __name__ == "__main__":
    if follows_rank_zero():  # a DDP rank > 0 that torchrun or SLURM started: rank 0 runs the sweep
        from gemmalab.runs.train_run import follow_rank_zero

        sys.exit(follow_rank_zero())
    os.environ.pop("WANDB_SERVICE", None)  # its own: an inherited one outlives a killed job, holding its run
    sys.exit(launch(sys.argv))
