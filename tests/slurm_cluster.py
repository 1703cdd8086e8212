"""A real single-node SLURM cluster for the tests (Debian's slurmctld and slurmd, 127.0.0.1 only), brought
up under a temporary directory and stopped by pid at the end: `with SlurmCluster(dir) as cluster: ...`.

What it cannot have here raises Unavailable with the reason (not root; the packages neither installed nor
installable); a cluster that is there but does not come up is an error. Settings that matter, and why:
../shared/slurm-single-node.md. Speed: a requeued job restarts cred_expire + ~1 s later (SLURM's default
120 s), KillWait is how long a signalled job has to save before SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
DAEMONS = ("slurmctld", "slurmd")


class Unavailable(RuntimeError):
    """Why no cluster can be started on this machine."""


def install_packages() -> None:
    """Debian's SLURM packages, when missing (as root: CI runs as root with the package registries reachable)."""
    if all(shutil.which(d) for d in DAEMONS):
        return
    if os.geteuid() != 0:
        raise Unavailable(f"SLURM is not installed and this is not root (apt-get install {' '.join(PACKAGES)})")
    if shutil.which("apt-get") is None:
        raise Unavailable("SLURM is not installed and there is no apt-get to install it")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in ([], [["apt-get", "update", "-q"]]):  # the package lists may be stale or absent
        for command in [*attempt, install]:
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        if done.returncode == 0:
            return
    raise Unavailable(f"apt-get could not install SLURM: {(done.stderr.strip().splitlines() or ['?'])[-1]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job_steps() -> list[int]:
    """The pids of every slurmstepd on this machine."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == "slurmstepd":
                pids.append(int(comm.parent.name))
    return pids


def memory_mb() -> int:
    total_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return int(total_kb / 1024 * 0.9)


class SlurmCluster:
    """slurmctld + slurmd on this host, one node, four partitions: `debug` (the default) and `urgent`, whose
    jobs preempt those of `low` and then `low2` (lower PriorityTiers, with GraceTime) by requeueing them,
    and no others."""

    def __init__(self, root: Path, cpus: int = 64, grace_s: int = 30, kill_wait_s: int = 20, cred_expire_s: int = 5):
        self.root, self.node, self.cpus = root, socket.gethostname().split(".")[0], cpus
        self.conf = root / "slurm.conf"
        self.settings = dict(grace_s=grace_s, kill_wait_s=kill_wait_s, cred_expire_s=cred_expire_s)
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.bring_up_s: float | None = None

    def write_conf(self, user_signal_on_preemption: bool = False) -> None:
        s, r = self.settings, self.root
        lines = [
            "ClusterName=gemmalab", "SlurmctldHost=localhost", "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/none", "CredType=cred/none",  # no munged to run
            "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny",  # listen on 127.0.0.1 only
            f"SlurmctldPort={self.ports[0]}", f"SlurmdPort={self.ports[1]}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",  # no cgroups here
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            "MpiDefault=none", "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory",
            "DefMemPerCPU=100", "ReturnToService=2", "JobRequeue=1",
            "SchedulerParameters=bf_interval=1,sched_interval=2",  # a requeued job starts once its BeginTime passes
            f"AuthInfo=cred_expire={s['cred_expire_s']}", f"KillWait={s['kill_wait_s']}",
            "PreemptType=preempt/partition_prio", "PreemptMode=REQUEUE",
            *(["SlurmctldParameters=preempt_send_user_signal"] if user_signal_on_preemption else []),
            f"StateSaveLocation={r / 'state'}", f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}", f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'slurmctld.log'}", f"SlurmdLogFile={r / 'slurmd.log'}",
            # CPUs as the tests need them, not as the machine has them: tiny jobs that mostly wait run side by side
            "SlurmdParameters=config_overrides",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={memory_mb()} State=UNKNOWN",
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP PriorityTier=10",
            *(f"PartitionName={low} Nodes={self.node} MaxTime=INFINITE State=UP PriorityTier={tier} "
              f"GraceTime={s['grace_s']}" for tier, low in enumerate(("low", "low2"), start=1)),
            f"PartitionName=urgent Nodes={self.node} MaxTime=INFINITE State=UP PriorityTier=10",
        ]  # fmt: skip
        self.conf.write_text("\n".join(lines) + "\n")

    def __enter__(self) -> SlurmCluster:
        install_packages()
        if os.geteuid() != 0:
            raise Unavailable("the cluster's daemons run as root (SlurmUser=root) and this is not root")
        start = time.monotonic()
        for d in ("state", "spool"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        self.ports = (free_port(), free_port())
        self.write_conf()
        for daemon in DAEMONS:
            subprocess.run([daemon], env=self.env, check=True, timeout=60)
        self.wait_until(lambda: self.node_states() == {"idle"}, 30, "the node to be idle")
        self.bring_up_s = time.monotonic() - start
        return self

    def __exit__(self, *_: object) -> None:
        """Cancel every job, stop both daemons by their pids, then any job step left (a slurmstepd outlives
        slurmd, and would take the next cluster's job 1 for its own)."""
        subprocess.run(["scancel", "--user", "root"], env=self.env, capture_output=True, timeout=60)
        try:
            self.idle(timeout_s=self.settings["kill_wait_s"] + 10)
        except (TimeoutError, RuntimeError):
            pass
        pids = [int(p.read_text()) for d in DAEMONS if (p := self.root / f"{d}.pid").exists()]
        pids += job_steps()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def run(self, *command: str) -> str:
        """A SLURM command against this cluster; its output (raises with its stderr when it fails)."""
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
        return done.stdout

    def idle_cpus(self) -> int:
        return int(self.run("sinfo", "-h", "-p", "debug", "-o", "%C").split("/")[1])  # allocated/idle/other/total

    def node_states(self) -> set[str]:
        """The node's state in each partition, as sinfo says (idle, allocated, down, ...)."""
        done = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env, capture_output=True, text=True)
        return {state.rstrip("*") for state in done.stdout.split()}

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as a dict (JobState, Restarts, ...)."""
        out = self.run("scontrol", "show", "job", "-o", job_id)
        return dict(field.split("=", 1) for field in out.split() if "=" in field)

    def set_user_signal_on_preemption(self, on: bool) -> None:
        self.write_conf(user_signal_on_preemption=on)
        self.run("scontrol", "reconfigure")

    def idle(self, timeout_s: float = 120) -> None:
        """Wait until no job is queued or running (a test's jobs leave the next test a free node)."""
        self.wait_until(lambda: not self.run("squeue", "-h").strip(), timeout_s, "the queue to empty")

    def wait_until(self, condition, timeout_s: float, what: str, job_logs=lambda: "") -> None:
        """Wait for condition(); past the timeout, fail with the daemons' logs, the queue and job_logs()."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                logs = {d: (self.root / f"{d}.log") for d in DAEMONS}
                tails = {d: p.read_text()[-1500:] if p.exists() else "" for d, p in logs.items()}
                queue = subprocess.run(["squeue", "-a", "-o", "%i %P %T %M %l %r"], env=self.env, capture_output=True,
                                       text=True, timeout=60).stdout  # fmt: skip
                raise TimeoutError(f"waited {timeout_s:.0f} s for {what}; queue:\n{queue}\njob logs:\n{job_logs()}\n"
                                   f"daemon logs: {tails}")  # fmt: skip
            time.sleep(0.2)
