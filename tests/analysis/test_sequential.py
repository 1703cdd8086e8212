import math

import numpy as np
import pytest

from gemmalab.analysis.power import paired_power
from gemmalab.analysis.sequential import (
    LOOKS,
    looks_up_to,
    pocock_level,
    seeds_needed,
    simulate_false_positives,
    simulate_with_fragile_looks,
    smallest_p,
)

STUDIES = 100_000  # fresh simulated studies with no effect: the rate's standard error is ~0.0007


@pytest.mark.parametrize("looks", [LOOKS, (3, 5), (3, 6, 10)])
def test_the_sequential_rules_false_positive_rate_is_at_most_the_nominal_level(looks):
    observed = simulate_false_positives(looks, STUDIES, seed=1)
    margin = 3 * math.sqrt(0.05 * 0.95 / STUDIES)
    print(f"looks {looks}: level per look {pocock_level(looks):.5f}, false positives {observed:.4f} of {STUDIES:,}")
    assert 0.05 - margin < observed <= 0.05 + margin  # at the nominal level: neither above it nor wasteful


@pytest.mark.parametrize("shift", [0.5, 1.6])  # 1.6: the machine's 0.086 nats over a seed SD of 0.053
def test_taking_the_next_look_on_a_fragile_verdict_keeps_the_false_positive_rate(shift):
    observed = simulate_with_fragile_looks(LOOKS, STUDIES // 2, shift, seed=3)
    print(f"looks {LOOKS}, fragile verdicts looked at again (shift {shift} SD): false positives {observed:.4f}")
    bound = simulate_false_positives(LOOKS, STUDIES // 2, seed=3)  # significant at some look, same draws
    assert observed <= bound <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / (STUDIES // 2))


def test_testing_every_look_at_5_percent_or_at_the_normal_theory_constant_would_exceed_it():
    p = smallest_p(LOOKS, STUDIES, np.random.default_rng(2))
    assert (p < 0.05).mean() > 0.09  # three naive looks: nearly double
    assert (p < 0.0221).mean() > 0.052  # Pocock's normal-theory constant, applied to t-tests at 2-7 df
    assert 0.0167 < pocock_level(LOOKS) < 0.0221  # between Bonferroni over the looks and the normal constant


def test_looks_stop_at_the_maximum_seeds_and_the_seeds_needed_reach_80_percent_power():
    assert looks_up_to(8) == (3, 5, 8) and looks_up_to(5) == (3, 5) and looks_up_to(3) == (3,)
    assert pocock_level((3,)) == 0.05
    n = seeds_needed(0.5, 1.0)
    assert paired_power(0.5, 1.0, n) >= 0.8 > paired_power(0.5, 1.0, n - 1)
    assert seeds_needed(0.0, 1.0) is None and seeds_needed(1e-6, 1.0, limit=50) is None
