from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.errors import AnalysisError
from analysis.exclusions import exclusions_apply
from analysis.load import DIMENSIONS, ratings_load
from analysis.simulate import ratings_simulate


@pytest.fixture
def study() -> pd.DataFrame:
    df = ratings_simulate(12, seed=8)
    df["attention_failed"] = 0
    df["seconds_on_item"] = 30.0
    participants = df["participant"].unique()
    df.loc[df["participant"] == participants[0], "excluded"] = True
    df.loc[df["participant"] == participants[1], "attention_failed"] = 2
    df.loc[df["participant"] == participants[2], "attention_failed"] = 1  # one fail is tolerated
    df.loc[df["participant"] == participants[3], list(DIMENSIONS)] = 4
    df.loc[df["participant"] == participants[4], "seconds_on_item"] = 2.0
    # Researcher-excluded and attention fails: counted once, under the first rule.
    df.loc[df["participant"] == participants[0], "attention_failed"] = 3
    return ratings_load(df)


def test_each_rule_removes_its_participants_in_order(study):
    result = exclusions_apply(study, min_seconds_per_item=5)
    table = result.table.set_index("rule")
    assert table["participants"].to_dict() == {
        "researcher": 1,
        "attention": 1,
        "straight_lining": 1,
        "too_fast": 1,
        "outlier": 0,
    }
    assert table["ratings"].sum() == 4 * 12
    assert result.kept["participant"].nunique() == 8
    assert "p00003" in set(result.kept["participant"])


def test_time_rule_only_applies_when_asked(study):
    table = exclusions_apply(study).table.set_index("rule")
    assert table.loc["too_fast", "participants"] == 0
    assert table.loc["too_fast", "description"].startswith("not applied")


def test_outliers_follow_the_iqr_rule_per_condition(study):
    result = exclusions_apply(study, drop_outliers=True)
    before = exclusions_apply(study).kept
    dropped = []
    for _, group in before.groupby("condition"):
        q1, q3 = np.percentile(group["quality"], [25, 75])
        low, high = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
        dropped.append(((group["quality"] < low) | (group["quality"] > high)).sum())
    assert result.table.set_index("rule").loc["outlier", "ratings"] == sum(dropped)
    assert len(result.kept) == len(before) - sum(dropped)


def test_nothing_left_is_a_clear_error():
    df = ratings_load(ratings_simulate(3, seed=0).assign(excluded=True))
    with pytest.raises(
        AnalysisError,
        match=r"no ratings are left after exclusions \(ratings removed by rule: researcher 36\)",
    ):
        exclusions_apply(df)


def test_bad_settings_are_refused(study):
    with pytest.raises(AnalysisError, match="min_seconds_per_item"):
        exclusions_apply(study, min_seconds_per_item=-1)
