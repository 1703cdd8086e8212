from omegaconf import OmegaConf

from gemmalab.runs.slurm import check_request, gpus_in


def test_gpus_are_counted_in_every_gres_form_sinfo_prints():
    assert [gpus_in(g) for g in ("gpu:4", "gpu:a100:4(S:0-1)", "gpu:2,shard:8", "shard:8,gpu:h100:8", "(null)", None)] \
        == [4, 4, 2, 8, 0, 0]  # fmt: skip


def test_without_sinfo_the_request_is_left_to_the_scheduler(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine with no SLURM commands: submission will say
    check_request(OmegaConf.create({"partition": None, "gpus_per_node": 8, "cpus_per_task": 512, "mem_gb": 10**6}))
