"""`magbig planted`'s fit test when cells share seeds (the full tables: benchmarks/sim_planted_fit.py)."""

from __future__ import annotations

import numpy as np
import pytest

from magbig import planted as P


def _seed_coupled(rng, planted, subject_index, n):
    """Exactly the planted share in every cell, but one uniform per (subject, seed) for all its cells."""
    u = rng.random((subject_index.max() + 1, n))
    return (u[subject_index] < planted[:, None]).sum(axis=1)


def _table(subjects=12, cells_per_subject=30, seed=0):
    rng = np.random.default_rng(seed)
    planted = rng.uniform(0.05, 0.95, subjects * cells_per_subject)
    subject_index = np.repeat(np.arange(subjects), cells_per_subject)
    return planted, subject_index, [f"s{i}" for i in subject_index]


def test_expected_cell_deviance_is_exact():
    from scipy.stats import binom

    for n, p in ((1, 0.3), (8, 0.05), (8, 0.5), (40, 0.9)):
        k = np.arange(n + 1)
        dev = P._cell_deviance(k, np.full(n + 1, n), np.full(n + 1, p))
        assert P._expected_cell_deviance(n, p) == pytest.approx(float(binom.pmf(k, n, p) @ dev))
    # at large n the deviance of one cell is about chi-square(1): mean 1
    assert P._expected_cell_deviance(2000, 0.3) == pytest.approx(1.0, abs=0.01)


@pytest.mark.slow
def test_cluster_robust_fit_keeps_its_size_under_shared_seeds_where_the_independent_test_does_not():
    planted, subject_index, subjects = _table()
    rng = np.random.default_rng(1)
    reps, n = 80, 8
    robust = independent = 0
    for r in range(reps):
        k = _seed_coupled(rng, planted, subject_index, n)
        res = P.planted_fit_test(k, np.full(len(k), n), planted, clusters=subjects, n_sim=300, seed=r)
        robust += res["p_value"] < 0.05
        independent += res["p_value_independent"] < 0.05
    assert res["clusters"] == 12 and res["cells"] == len(planted)
    assert robust / reps <= 0.10  # nominal 0.05 (about 0.02-0.05 in the benchmark)
    assert independent / reps >= 0.20  # the old test: the shared noise looks like misfit


def test_cluster_robust_fit_rejects_a_shift_and_needs_three_clusters():
    planted, subject_index, subjects = _table(seed=2)
    rng = np.random.default_rng(3)
    shifted = rng.binomial(40, np.clip(planted + 0.2, 0, 1))
    res = P.planted_fit_test(shifted, np.full(len(planted), 40), planted, clusters=subjects, n_sim=200)
    assert res["p_value"] < 0.01 and res["method"].startswith("cluster-robust")
    two = P.planted_fit_test([3, 4], [8, 8], [0.4, 0.5], clusters=["a", "b"], n_sim=200)
    assert two["p_value"] is None and "too few" in two["note"]
    # without clusters the independent bootstrap answers, as before
    plain = P.planted_fit_test([3, 4], [8, 8], [0.4, 0.5], n_sim=200)
    assert plain["p_value"] is not None and "clusters" not in plain
