from __future__ import annotations

import pandas as pd
import pytest

from analysis.errors import AnalysisError
from analysis.load import RATINGS_COLUMNS, ratings_load
from analysis.simulate import ratings_simulate


def test_the_same_seed_gives_the_same_study():
    pd.testing.assert_frame_equal(ratings_simulate(10, seed=3), ratings_simulate(10, seed=3))
    assert not ratings_simulate(10, seed=3).equals(ratings_simulate(10, seed=4))


def test_it_follows_the_protocol_and_the_export_format():
    df = ratings_simulate(25, seed=1, covariates=True)
    assert list(df.columns) == [*RATINGS_COLUMNS, "age", "gender"]
    per_participant = df.groupby("participant")
    assert (per_participant.size() == 12).all()
    assert (per_participant["question_id"].nunique() == 12).all()
    assert (df.groupby(["participant", "condition"]).size() == 3).all()
    assert (
        per_participant["position"].apply(sorted).apply(list) == [list(range(1, 13))] * 25
    ).all()
    ratings_load(df)  # valid export


def test_an_effect_moves_only_its_dimension():
    df = ratings_simulate(300, effects={"MT:original": {"completeness": 1.0}}, seed=0)
    means = df.groupby("condition")[["completeness", "plausibility"]].mean()
    assert means.loc["MT:original", "completeness"] - means.loc["CF:original", "completeness"] > 0.6
    assert (
        abs(means.loc["MT:original", "plausibility"] - means.loc["CF:original", "plausibility"])
        < 0.15
    )


def test_it_rejects_effects_for_unknown_conditions():
    with pytest.raises(AnalysisError, match="unknown conditions: ZZ"):
        ratings_simulate(3, effects={"ZZ": {"completeness": 1.0}})
