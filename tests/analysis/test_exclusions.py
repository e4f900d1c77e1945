from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.errors import AnalysisError
from analysis.exclusions import exclusions_apply, iqr_outliers
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


@pytest.mark.parametrize(
    ("rule", "off", "flagged"),
    [
        ("researcher", {"researcher": False}, 0),
        ("attention", {"attention_fail_threshold": None}, 1),
        ("straight_lining", {"straight_lining": False}, 3),
        ("too_fast", {"min_seconds_per_item": None}, 4),
    ],
)
def test_each_rule_can_be_switched_off(study, rule, off, flagged):
    participant = study["participant"].unique()[flagged]
    on = exclusions_apply(study, min_seconds_per_item=5)
    assert participant not in set(on.kept["participant"])
    result = exclusions_apply(study, **{"min_seconds_per_item": 5, **off})
    row = result.table.set_index("rule").loc[rule]
    assert (row["participants"], row["ratings"]) == (0, 0)
    assert row["description"].startswith("not applied")
    if rule == "researcher":
        # That participant also failed three checks, so the next rule takes them instead.
        assert result.table.set_index("rule").loc["attention", "participants"] == 2
        assert len(result.kept) == len(on.kept)
    else:
        assert participant in set(result.kept["participant"])
        assert len(result.kept) == len(on.kept) + 12


def test_with_every_rule_off_only_nothing_is_removed(study):
    result = exclusions_apply(
        study, researcher=False, attention_fail_threshold=None, straight_lining=False
    )
    assert len(result.kept) == len(study)
    assert result.table["ratings"].sum() == 0


def test_the_attention_threshold_is_inclusive(study):
    # Participant 2 failed one check: kept at threshold 2, removed at threshold 1.
    lenient = exclusions_apply(study, attention_fail_threshold=2)
    strict = exclusions_apply(study, attention_fail_threshold=1)
    assert "p00003" in set(lenient.kept["participant"])
    assert "p00003" not in set(strict.kept["participant"])


def test_outliers_for_some_analyses_stay_in_kept_and_leave_trimmed(study):
    everywhere = exclusions_apply(study, drop_outliers=True)
    scoped = exclusions_apply(study, drop_outliers=True, outliers_for="regression")
    removed = everywhere.table.set_index("rule").loc["outlier", "ratings"]
    assert removed > 0
    assert len(scoped.kept) == len(everywhere.kept) + removed
    assert len(scoped.trimmed) == len(everywhere.kept)
    assert everywhere.trimmed.equals(everywhere.kept)
    row = scoped.table.set_index("rule").loc["outlier"]
    assert row["description"].endswith("left out of: regression")


def test_iqr_fences_are_strict_with_type_seven_quartiles():
    # Type 7: Q1 = 2.5, Q3 = 5.5 for 1..7 → fences -2 and 10; 10 stays, 10.5 goes.
    values = [1.0, 2, 3, 4, 5, 6, 7, 10]
    frame = pd.DataFrame({"g": "a", "x": values})
    q1, q3 = np.quantile(values, [0.25, 0.75], method="linear")
    upper = q3 + 1.5 * (q3 - q1)
    on_fence = frame.assign(x=[*values[:-1], upper])
    assert not iqr_outliers(on_fence, "x", by=["g"]).any()
    beyond = frame.assign(x=[*values[:-1], upper + 1e-9])
    assert iqr_outliers(beyond, "x", by=["g"]).tolist() == [False] * 7 + [True]
    two_groups = pd.concat([beyond, on_fence.assign(g="b")], ignore_index=True)
    assert iqr_outliers(two_groups, "x", by=["g"]).sum() == 1
    wider = iqr_outliers(beyond, "x", by=["g"], multiplier=3.0)
    assert not wider.any()
