from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.effect_sizes import vargha_delaney, vda_magnitude


def _a_by_counting(x: np.ndarray, y: np.ndarray) -> float:
    greater = (x[:, None] > y[None, :]).sum()
    ties = (x[:, None] == y[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(x) * len(y)))


def test_a_is_the_share_of_pairs_where_the_first_group_is_higher(small_study):
    table = vargha_delaney(small_study, dv="completeness").set_index(["a", "b"])
    groups = {c: g["completeness"].to_numpy() for c, g in small_study.groupby("condition")}
    assert list(table.index) == list(combinations(sorted(groups), 2))
    for (a, b), row in table.iterrows():
        assert row["A"] == pytest.approx(_a_by_counting(groups[a], groups[b]))
        # The Mann–Whitney U of the first sample over the second, per pair of values.
        u = stats.mannwhitneyu(groups[a], groups[b]).statistic
        assert row["A"] == pytest.approx(u / (len(groups[a]) * len(groups[b])))
        assert (row["n_a"], row["n_b"]) == (len(groups[a]), len(groups[b]))


def test_the_simulated_advantage_shows_in_a(small_study):
    table = vargha_delaney(small_study, dv="completeness").set_index(["a", "b"])
    assert table.loc[("CF:original", "MT:original"), "A"] > 0.6


@pytest.mark.parametrize(
    ("value", "label"),
    [(0.5, "negligible"), (0.55, "negligible"), (0.57, "small"), (0.36, "medium"), (0.72, "large")],
)
def test_magnitudes_follow_vargha_and_delaney(value, label):
    assert vda_magnitude(value) == label


def test_identical_groups_are_stochastically_equal():
    data = pd.DataFrame({"condition": list("aabb"), "x": [1, 2, 1, 2]})
    assert vargha_delaney(data, dv="x")["A"].tolist() == [0.5]
