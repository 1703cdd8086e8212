"""hydra/launcher=slurm | slurm_cpu before submission: the request checked against the cluster's nodes
and by sbatch itself, and the launching process kept quiet where SLURM has no accounting.

sbatch refuses an impossible request with one line of its own, but only at submission, raised through
Hydra and submitit as a traceback; a request for more than any node has is accepted and pends for good.
Both are refused here, before any job, in one line: what `sinfo` shows naming the key, then whatever else
`sbatch --test-only` refuses in the job script submitit would submit (an option, an account, a QoS).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import submitit
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import DictConfig, OmegaConf
from submitit.slurm.slurm import SlurmInfoWatcher

from gemmalab.errors import ConfigError


def is_slurm(launcher: DictConfig) -> bool:
    return str(launcher.get("_target_", "")).endswith("submitit_launcher.SlurmLauncher")


@dataclass
class Node:
    partition: str
    cpus: int
    memory_mb: int
    gpus: int


def gpus_in(gres: str | None) -> int:
    """GPUs in a gres string: 'gpu:4', 'gpu:a100:4(S:0-1)', 'gpu:2,shard:8' -> 4, 4, 2; '(null)' -> 0."""
    return sum(int(n) for n in re.findall(r"(?:^|,)gpu(?::[^:,(]+)?:(\d+)", gres or ""))


def cluster_nodes() -> tuple[list[Node], str | None]:
    """Every node of every partition `sinfo` lists, and the default partition; ([], None) without sinfo."""
    if shutil.which("sinfo") is None:
        return [], None
    command = ["sinfo", "--noheader", "--Node", "--format=%P|%c|%m|%G"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode:
        why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise ConfigError(f"hydra/launcher=slurm cannot reach the cluster: sinfo says {why!r} (allowed: a "
                          "cluster whose controller answers; SLURM_CONF names its slurm.conf)")  # fmt: skip
    nodes, default = [], None
    for line in done.stdout.split():
        partition, cpus, memory, gres = line.split("|")
        if partition.endswith("*"):
            partition = default = partition[:-1]
        nodes.append(Node(partition, int(cpus), int(memory.rstrip("+")), gpus_in(gres)))
    return nodes, default


def check_request(launcher: DictConfig) -> None:
    """Refuse, in one line naming the key, a partition the cluster lacks, GPUs on a partition without
    any, and more CPUs, memory or GPUs per node than every node of the partition has."""
    nodes, default = cluster_nodes()
    if not nodes:
        return
    partitions = sorted({n.partition for n in nodes})
    wanted = str(launcher.partition).split(",") if launcher.partition else [default]
    for name in wanted:
        if name not in partitions:
            key = "hydra.launcher.partition"
            raise ConfigError(f"{key}={name!r} is not a partition of this cluster (allowed: {', '.join(partitions)})")
    usable = [n for n in nodes if n.partition in wanted]
    where = f"partition {','.join(wanted)}"
    tasks = launcher.tasks_per_node or 1
    gpus = launcher.gpus_per_node or (launcher.get("gpus_per_task") or 0) * tasks or gpus_in(launcher.get("gres"))
    most = max(n.gpus for n in usable)
    if gpus and not most:
        with_gpus = sorted({n.partition for n in nodes if n.gpus}) or ["none on this cluster"]
        raise ConfigError(f"hydra.launcher.gpus_per_node={gpus} asks for GPUs, but {where} has none (allowed: "
                          f"hydra/launcher=slurm_cpu; partitions with GPUs: {', '.join(with_gpus)})")  # fmt: skip
    if gpus > most:
        raise ConfigError(f"hydra.launcher.gpus_per_node={gpus} is more GPUs than a node of {where} has "
                          f"(allowed: at most {most})")  # fmt: skip
    cpus, most = (launcher.cpus_per_task or 1) * tasks, max(n.cpus for n in usable)
    if cpus > most:
        raise ConfigError(f"hydra.launcher.cpus_per_task={launcher.cpus_per_task} x tasks_per_node={tasks} is "
                          f"more CPUs than a node of {where} has (allowed: at most {most} in all)")  # fmt: skip
    most = max(n.memory_mb for n in usable) // 1024
    if launcher.mem_gb and launcher.mem_gb > most:
        raise ConfigError(f"hydra.launcher.mem_gb={launcher.mem_gb} is more memory than a node of {where} has "
                          f"(allowed: at most {most})")  # fmt: skip


def check_submission(launcher: DictConfig) -> None:
    """`sbatch --test-only` on the script submitit would submit for one job of the sweep (checked by the
    controller, not queued), its parameters mapped as the Hydra plugin maps them."""
    if shutil.which("sbatch") is None:
        raise ConfigError("hydra/launcher=slurm submits with sbatch, which is not on PATH (allowed: a machine that "
                          "submits to a SLURM cluster; hydra/launcher=submitit_local runs the jobs here)")  # fmt: skip
    plugin_only = {"_target_", "submitit_folder", "name", "max_num_timeout"}
    params = {k: v for k, v in OmegaConf.to_container(launcher).items() if k not in plugin_only}
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    with tempfile.TemporaryDirectory() as folder:
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
        script = Path(folder) / "check.sh"
        script.write_text(executor._executor._make_submission_file_text("true", "check"))
        done = subprocess.run(["sbatch", "--test-only", str(script)], capture_output=True, text=True, timeout=60)
    if done.returncode:
        why = " ".join(line for line in done.stderr.splitlines() if not line.startswith("Try "))
        raise ConfigError(f"sbatch refuses the jobs: {' '.join(why.split())} (allowed: what the cluster accepts; "
                          "hydra.launcher.* as in conf/hydra/launcher/slurm.yaml)")  # fmt: skip


def quiet_without_accounting() -> None:
    """submitit asks `sacct` for its jobs' states every poll; on a cluster without accounting each call
    fails with two lines on the console and returns nothing ('UNKNOWN', after which submitit goes by the
    jobs' result files alone, as it does anyway). There, it is not asked."""
    done = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=60)
    if "accounting_storage/none" not in done.stdout:
        return
    SlurmInfoWatcher._make_command = lambda self: None
