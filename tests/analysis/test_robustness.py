import math

import numpy as np

from gemmalab.analysis.claims import CLAIMS, one_arm_moves, still_open
from gemmalab.analysis.robustness import MACHINE_NOISE, fragile, kind, one_seed_moved, shown
from gemmalab.analysis.tables import difference
from gemmalab.analysis.verdict import NO_EFFECT, SUPPORTED, Measured, verdict

LOWER = (-math.inf, 0.0)


def paired(differences: list[float], test: str = "paired") -> Measured:
    """Arm a's losses `differences` above arm b's (3.0 at every seed), measured as the claims measure them."""
    seeds = np.arange(len(differences))
    a, b = 3.0 + np.array(differences), np.full(len(differences), 3.0)
    d = difference(a, seeds, b, seeds, paired=True)
    per_seed = [{"arm": arm, "where": {}, "seed": int(s), "value": float(v), "run_id": None}
                for arm, values in (("a", a), ("b", b)) for s, v in zip(seeds, values, strict=True)]  # fmt: skip
    return Measured(d.delta, d.ci, d.n, test, p=d.p, df=d.df, per_seed=tuple(per_seed))


def test_a_verdict_one_seed_moving_by_the_machines_noise_would_flip_is_fragile():
    measured = paired([-0.05, -0.06, -0.04])  # supported, but each seed is within the noise of 0
    assert kind(verdict(*LOWER, measured)) == SUPPORTED
    moved = one_seed_moved(LOWER, measured, None, math.nan, None, 0.05, relative=False)
    assert moved["holds"] is False and moved["shift"] == MACHINE_NOISE
    assert moved["flip"] == f"a at seed 0 +{MACHINE_NOISE:g} nats: {NO_EFFECT}"
    # the flip is real: that seed moved, the rule itself no longer shows a direction
    assert verdict(*LOWER, paired([-0.05 + MACHINE_NOISE, -0.06, -0.04])).startswith(NO_EFFECT)
    row = {"verdict": verdict(*LOWER, measured), "one_seed_moved": moved, "n": 3}
    assert fragile(row) and shown(row).startswith("supported (fragile: a at seed 0")
    claim = next(c for c in CLAIMS if c.id == "norm-dual-vs-pre")
    assert still_open(claim, row, 5) and not still_open(claim, row, 3)  # a fragile verdict takes the next look


def test_a_verdict_far_beyond_the_machines_noise_holds():
    measured = paired([-0.5, -0.52, -0.48, -0.51, -0.49])
    moved = one_seed_moved(LOWER, measured, None, math.nan, None, 0.05, relative=False)
    assert moved == {"shift": MACHINE_NOISE, "holds": True, "flip": None}
    row = {"verdict": verdict(*LOWER, measured), "one_seed_moved": moved, "n": 5}
    assert not fragile(row) and shown(row) == row["verdict"]
    claim = next(c for c in CLAIMS if c.id == "norm-dual-vs-pre")
    assert not still_open(claim, row, 8)


def test_relative_claims_move_the_loss_in_nats_and_judge_in_percent():
    # -1% of 3 nats = -0.03 nats per seed: a 0.086-nat move is ~3%, enough to flip it
    measured = paired([-0.03, -0.031, -0.029])
    percent = Measured(measured.value * 100 / 3, measured.ci * 100 / 3, 3, "paired", p=measured.p, df=measured.df,
                       per_seed=measured.per_seed)  # fmt: skip
    assert one_seed_moved(LOWER, percent, None, math.nan, None, 0.05, relative=True)["holds"] is False
    far = paired([-0.3, -0.31, -0.29])
    percent = Measured(far.value * 100 / 3, far.ci * 100 / 3, 3, "paired", p=far.p, df=far.df, per_seed=far.per_seed)
    assert one_seed_moved(LOWER, percent, None, math.nan, None, 0.05, relative=True)["holds"] is True


def test_the_check_applies_to_paired_losses_only():
    assert one_seed_moved(LOWER, paired([-0.05, -0.06, -0.04], test="Welch"), None, math.nan, None, 0.05,
                          relative=False) is None  # fmt: skip
    by_id = {c.id: c.contrast for c in CLAIMS}
    assert one_arm_moves(by_id["softcap-quality"]) and not one_arm_moves(by_id["softcap-spikes"])  # a loss; a count
    assert not one_arm_moves(by_id["table10-half"])  # val/loss, but both arms are one run: the machine moves both
