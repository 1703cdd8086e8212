"""sweep.py on a real SLURM cluster (tests/slurm_cluster.py): hydra/launcher=slurm_cpu submits each job with
sbatch, and SLURM itself signals, requeues, preempts and times out the jobs.

The cases run side by side (each its own sweep, run store and SLURM job), started once for the module: most
of a case is waiting (for a requeued job's start, a time limit's signal), which would add minutes one after
another. A case's job is held at step 3 (tests/faults.py WaitAtStep) until SLURM's signal arrives there.
Run them alone: `python -m pytest -m slurm`.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gemmalab.analysis import report
from gemmalab.runs.store import RunDir
from gemmalab.runs.sweep_dir import SweepDir
from gemmalab.train.checkpoints import load_checkpoint

from .conftest import REPO, launch_here, sweep_command
from .faults import wait_at
from .slurm_cluster import SlurmCluster, Unavailable

pytestmark = [pytest.mark.processes, pytest.mark.scheduler, pytest.mark.slurm]

ONE_CPU = ["hydra/launcher=slurm_cpu", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1", "logger=none"]
HELD_AT = 3  # the step at which a case's job waits for its signal


@dataclass
class Case:
    """One sweep on the cluster. With `act`, each of its `held` jobs waits at step 3 until act(cluster, {run
    name: SLURM job id}) has signalled it."""

    args: list[str]
    act: Callable[[SlurmCluster, dict[str, str]], None] | None = None
    held: int = 1
    result: subprocess.CompletedProcess | None = None
    jobs: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    root: Path | None = None

    def run(self, cluster: SlurmCluster, root: Path, on_held: Callable[[], None] = lambda: None) -> Case:
        self.root = root
        command, env = sweep_command(root, "-m", *ONE_CPU, *self.args, *(wait_at(HELD_AT) if self.act else []))
        start = time.monotonic()
        proc = subprocess.Popen(command, cwd=REPO, env={**env, **cluster.env}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            if self.act:
                what = f"{self.held} job(s) of {root.name} at step {HELD_AT}"
                held = lambda: len(list(root.glob("*/waiting"))) == self.held  # noqa: E731
                cluster.wait_until(held, 240, what, lambda: self.job_logs()[-3000:])
                self.seconds["held"] = time.monotonic() - start
                self.jobs = self.job_ids()
                on_held()
                self.act(cluster, self.jobs)
            out, err = proc.communicate(timeout=420)
        finally:
            proc.kill()
        self.seconds["done"] = time.monotonic() - start
        self.result = subprocess.CompletedProcess(command, proc.returncode, out, err)
        return self

    def job_ids(self) -> dict[str, str]:
        """{run name: SLURM job id} as squeue shows it (4_0, 4_1: submitit submits a sweep as one job array,
        whose own id would address every task), from each job's submitit folder and first line."""
        jobs = {}
        for log in self.root.glob("_sweeps/*/.submitit/*/*_0_log.out"):
            if started := re.search(r"\[gemmalab\] (?:train|resume) (.+?) -> ", log.read_text()):
                jobs[started.group(1)] = log.parent.name
        return jobs

    def run_dir(self, name: str) -> RunDir:
        runs = [RunDir(self.root, p.parent.name) for p in self.root.glob("*/summary.json")]
        (run,) = [r for r in runs if r.summary()["name"] == name]
        return run

    def job_logs(self, name: str = "seed=0") -> str:
        """What the SLURM job that trained run `name` printed (every attempt: submitit appends)."""
        job = self.jobs.get(name, "*")
        return "".join(p.read_text() for p in self.root.glob(f"_sweeps/*/.submitit/{job}/*_log.*"))


def usr2(cluster: SlurmCluster, job: str) -> None:
    cluster.run("scancel", "--signal=USR2", job)  # what --signal=USR2@<signal_delay_s> sends


def preempt(cluster: SlurmCluster, _jobs: dict[str, str]) -> None:
    """A job of the higher-priority partition that fits only once a job of a lower one is gone: 10 CPUs more
    than are idle (the case's job has 16; all other cases' jobs together hold 5)."""
    cluster.run("sbatch", "--partition=urgent", f"--cpus-per-task={cluster.idle_cpus() + 10}", "--mem=100",
                "--output=/dev/null", "--wrap=sleep 1")  # fmt: skip


def steps_logged(run: RunDir) -> list[int]:
    rows = [json.loads(line) for line in run.metrics_path.read_text().splitlines()]
    return sorted(r["step"] for r in rows if "train/loss" in r)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        with SlurmCluster(tmp_path_factory.mktemp("slurm")) as cluster:
            yield cluster
    except Unavailable as why:
        pytest.skip(f"no SLURM cluster here: {why}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, RunDir]:
    """Seeds 0 and 1 trained in this process, never interrupted: the curves a requeued run must reproduce."""
    root = tmp_path_factory.mktemp("reference")
    assert launch_here(root, "-m", "seed=0,1", "logger=none")[0] == 0
    return {name: Case([], root=root).run_dir(name) for name in ("seed=0", "seed=1")}


@pytest.fixture(scope="module")
def cases(cluster, reference, tmp_path_factory):
    """Every case at once; the two preemptions one after the other (they differ in a setting of the
    cluster's; each one's urgent job preempts that case's job alone)."""
    root = tmp_path_factory.mktemp("slurm_runs")
    preempted = ["hydra.launcher.partition=low", "hydra.launcher.cpus_per_task=16"]
    first_held, first_done = threading.Event(), threading.Event()

    def usr2_and_requeue(cluster: SlurmCluster, jobs: dict[str, str]) -> None:
        usr2(cluster, jobs["seed=0"])
        cluster.run("scontrol", "requeue", jobs["seed=1"])

    def preempt_with_user_signal(cluster: SlurmCluster, jobs: dict[str, str]) -> None:
        first_done.wait(300)  # the setting is the cluster's
        cluster.set_user_signal_on_preemption(True)
        preempt(cluster, jobs)

    cases = {
        "preempt_sigterm": Case(preempted, preempt),
        "sweep": Case(["seed=0,1"], usr2_and_requeue, held=2),
        # submitit's --signal=USR2@10: SLURM sends it 10-40 s before the limit (it looks every 30 s), so 80-110 s
        # after the start; the job must be at step 3 by then, while five other cases' jobs load the machine
        "time_limit": Case(
            ["hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=10", "+callbacks.wait.seconds=150"],
            lambda *_: None,
        ),
        "ddp": Case(["hydra.launcher.tasks_per_node=2", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]),
        # held at step 3 beside the first until that one is done; low2 is preempted only after low
        "preempt_usr2": Case(
            ["hydra.launcher.partition=low2", "hydra.launcher.cpus_per_task=16"], preempt_with_user_signal
        ),
    }

    def first_preemption() -> None:
        try:
            cases["preempt_sigterm"].run(cluster, root / "preempt_sigterm", on_held=first_held.set)
        finally:
            first_held.set()
            first_done.set()

    with ThreadPoolExecutor(len(cases)) as pool:
        running = [pool.submit(first_preemption), pool.submit(cases["time_limit"].run, cluster, root / "time_limit")]
        first_held.wait(240)  # the longest chains start first, before the others load the machine
        running += [pool.submit(c.run, cluster, root / n) for n, c in cases.items()
                    if n not in ("preempt_sigterm", "time_limit")]  # fmt: skip
        for future in running:
            future.result()
    print(f"[slurm] bring-up: {cluster.bring_up_s:.1f} s (after the packages were there)")
    for name, case in cases.items():
        print(f"[slurm] {name}: " + ", ".join(f"{k} after {v:.0f} s" for k, v in case.seconds.items()))
    return cases


def test_a_two_job_sweep_on_slurm_finishes_in_one_group_with_one_summary(cases):
    """Its two jobs were signalled in step 3 (below): still 2 finished, one group, one closing summary."""
    case = cases["sweep"]
    out = case.result.stdout
    assert case.result.returncode == 0, case.result.stderr[-3000:]
    assert out.count("2 finished (2 job(s)") == 1 and out.count("[gemmalab] group ") == 1
    (group,) = SweepDir.groups(case.root)
    assert sorted(m["status"] for m in SweepDir(case.root, group).latest_members()) == ["finished"] * 2
    assert "Bypassing sacct error" not in case.result.stderr + out  # no accounting on this cluster: not asked
    tables = report.main(["--run-root", str(case.root), "--group", group, "--no-wandb"])
    assert "(n=2)" in (tables / "tables" / "runs.md").read_text()


@pytest.mark.parametrize(
    "name, run, signal_line",
    [
        ("sweep", "seed=0", "[gemmalab] SIGUSR2 (preempted or at the time limit): saving the current step"),
        ("sweep", "seed=1", "[gemmalab] SIGTERM (SLURM requeues the job): saving the current step"),
        ("time_limit", "seed=0", "[gemmalab] SIGUSR2 (preempted or at the time limit): saving the current step"),
        ("preempt_sigterm", "seed=0", "[gemmalab] SIGTERM (preempted): saving the current step"),
        ("preempt_usr2", "seed=0", "[gemmalab] SIGUSR2 (preempted or at the time limit): saving the current step"),
    ],
)
def test_a_signalled_job_is_saved_requeued_by_slurm_and_resumes_where_it_stopped(
    cases, cluster, reference, name, run, signal_line
):
    """Each way SLURM takes a job away mid-training: submitit's USR2 (`scancel --signal`, what the time limit
    sends, and a preemption under preempt_send_user_signal), `scontrol requeue` and a preemption without it
    (SIGTERM). The job saves the step it was in, SLURM starts it again (Restarts=1), it resumes from that
    step, logs every step once and ends with the uninterrupted run's numbers; the sweep ends finished."""
    case = cases[name]
    logs = case.job_logs(run)
    assert case.result.returncode == 0, case.result.stderr[-3000:] + logs[-3000:]
    assert "interrupted" not in case.result.stdout and "rerun" not in case.result.stdout
    assert signal_line in logs and f"[gemmalab] resume {run} from last.ckpt" in logs
    assert cluster.job(case.jobs[run])["Restarts"] == "1"
    trained = case.run_dir(run)
    assert trained.summary()["status"] == "finished" and trained.summary()["resumed_from"].endswith("last.ckpt")
    resumed_at = load_checkpoint(trained.checkpoint_dir / "previous.ckpt")["global_step"]
    assert resumed_at == HELD_AT + 1  # the signal came after step 3 was checked: the stop is taken after step 4
    assert steps_logged(trained) == list(range(6))
    expected = reference[run].metrics()
    for step, values in trained.metrics().items():
        for key in ("train/loss", "val/loss"):
            if key in values:
                assert values[key] == pytest.approx(expected[step][key], rel=1e-4), (step, key)


def test_a_two_task_ddp_job_trains_its_run_once(cases, reference):
    """tasks_per_node=2: SLURM starts both ranks (srun), rank 0 names the run, both train it; one summary."""
    case = cases["ddp"]
    assert case.result.returncode == 0, case.result.stderr[-3000:] + case.job_logs()[-3000:]
    assert case.result.stdout.count("1 finished (1 job(s)") == 1
    trained = case.run_dir("seed=0")
    assert steps_logged(trained) == list(range(6))
    assert case.job_logs().count("[gemmalab] finished: seed=0") == 1  # rank 1 prints nothing
    expected = reference["seed=0"].summary()["val/loss"]
    assert trained.summary()["val/loss"] == pytest.approx(expected, rel=1e-4)  # = one process


@pytest.mark.parametrize(
    "launcher, message",
    [
        (["hydra/launcher=slurm"], "hydra.launcher.gpus_per_node=1 asks for GPUs, but partition debug has none "
                                   "(allowed: hydra/launcher=slurm_cpu; partitions with GPUs: none on this cluster)"),
        (["hydra/launcher=slurm_cpu", "hydra.launcher.cpus_per_task=65"],
         "hydra.launcher.cpus_per_task=65 x tasks_per_node=1 is more CPUs than a node of partition debug has "
         "(allowed: at most 64 in all)"),
        (["hydra/launcher=slurm_cpu", "hydra.launcher.mem_gb=100000"],
         "hydra.launcher.mem_gb=100000 is more memory than a node of partition debug has (allowed: at most"),
        (["hydra/launcher=slurm_cpu", "hydra.launcher.partition=gpu"],
         "hydra.launcher.partition='gpu' is not a partition of this cluster (allowed: debug, low, low2, urgent)"),
        (["hydra/launcher=slurm_cpu", "hydra.launcher.cpus_per_task=1",
          "+hydra.launcher.additional_parameters.bogus=1"],
         "sbatch refuses the jobs: sbatch: unrecognized option '--bogus=1' (allowed: what the cluster accepts;"),
    ],
)  # fmt: skip
def test_a_request_the_cluster_cannot_meet_is_refused_in_one_line(cluster, tmp_path, monkeypatch, capsys, launcher,
                                                                   message):  # fmt: skip
    """From sinfo before any job (the preset's GPU, more CPUs or memory than a node has, no such partition);
    what only sbatch can tell, from `sbatch --test-only`, in one line too. Nothing is submitted."""
    monkeypatch.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])
    assert launch_here(tmp_path, "-m", *launcher, "seed=0,1", "logger=none")[0] == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {message}") and "\n" not in err, err
    assert not cluster.run("squeue", "-h").strip()  # nothing was submitted
