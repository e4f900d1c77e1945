from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.descriptives import DESCRIPTIVES_COLUMNS, descriptives


def test_descriptives_match_numpy_and_scipy(plant_growth):
    table = descriptives(plant_growth, dvs=["weight"], between="group")
    assert list(table.columns) == list(DESCRIPTIVES_COLUMNS)
    for row in table.itertuples():
        values = plant_growth.loc[plant_growth["group"] == row.condition, "weight"].to_numpy()
        low, high = stats.t.interval(
            0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values)
        )
        assert row.n == 10
        assert row.mean == pytest.approx(values.mean())
        assert row.sd == pytest.approx(values.std(ddof=1))
        assert row.se == pytest.approx(stats.sem(values))
        assert row.median == pytest.approx(np.median(values))
        assert (row.ci_low, row.ci_high) == pytest.approx((low, high))


def test_r_plantgrowth_group_means(plant_growth):
    means = descriptives(plant_growth, dvs=["weight"], between="group").set_index("condition")[
        "mean"
    ]
    assert means.to_dict() == pytest.approx({"ctrl": 5.032, "trt1": 4.661, "trt2": 5.526})


def test_a_group_of_one_has_no_spread():
    table = descriptives(pd.DataFrame({"condition": ["a", "b", "b"], "x": [2, 3, 5]}), dvs=["x"])
    single = table.iloc[0]
    assert single["n"] == 1
    assert np.isnan(single["sd"])
    assert np.isnan(single["ci_low"])
