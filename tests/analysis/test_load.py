from __future__ import annotations

import pandas as pd
import pytest

from analysis.errors import AnalysisError
from analysis.load import (
    DIMENSIONS,
    RATINGS_COLUMNS,
    conditions_check,
    length_column,
    ratings_load,
    reference_default,
)
from analysis.simulate import ratings_simulate


@pytest.fixture
def csv_path(tmp_path):
    path = tmp_path / "ratings.csv"
    ratings_simulate(6, seed=2, covariates=True).to_csv(path, index=False)
    return path


def _rewrite(path, edit) -> None:
    edit(pd.read_csv(path, dtype=str, keep_default_na=False)).to_csv(path, index=False)


def test_it_reads_the_export_with_types_and_quality(csv_path):
    df = ratings_load(csv_path)
    assert list(df.columns[: len(RATINGS_COLUMNS)]) == list(RATINGS_COLUMNS)
    assert {"age", "gender", "quality"} <= set(df.columns)
    assert df["plausibility"].dtype == "int64"
    assert df["excluded"].dtype == bool
    assert df["participant"].iloc[0] == "p00001"
    assert df["quality"].to_numpy() == pytest.approx(df[list(DIMENSIONS)].mean(axis=1).to_numpy())


def test_a_dataframe_and_its_csv_load_the_same(csv_path):
    from_csv = ratings_load(csv_path)
    from_frame = ratings_load(pd.read_csv(csv_path))
    pd.testing.assert_frame_equal(
        from_csv[list(RATINGS_COLUMNS)], from_frame[list(RATINGS_COLUMNS)], check_dtype=False
    )


def test_missing_columns_are_named(csv_path):
    # The dimensions are whatever lies between the lengths and seconds_on_item, so only the
    # fixed columns can be missing (tests/analysis/test_questionnaire_dimensions.py).
    _rewrite(csv_path, lambda f: f.drop(columns=["position", "seconds_on_item"]))
    with pytest.raises(AnalysisError, match="missing the column\\(s\\): position, seconds_on_item"):
        ratings_load(csv_path)


def test_a_rating_outside_the_scale_names_column_and_line(csv_path):
    def edit(frame):
        frame.loc[5, "satisfaction"] = "6"
        frame.loc[8, "satisfaction"] = "x"
        return frame

    _rewrite(csv_path, edit)
    with pytest.raises(AnalysisError) as info:
        ratings_load(csv_path)
    assert (
        str(info.value)
        == "satisfaction must be a whole number from 1 to 5; line 7 has '6', line 10 has 'x'"
    )


def test_dataframe_rows_are_counted_from_zero():
    frame = ratings_simulate(2, seed=0)
    frame.loc[3, "plausibility"] = 0
    with pytest.raises(AnalysisError, match="row 3 has '0'"):
        ratings_load(frame)


def test_many_bad_rows_are_summarised():
    frame = ratings_simulate(2, seed=0).astype({"explanation_length": object})
    frame["explanation_length"] = "long"
    with pytest.raises(
        AnalysisError, match=r"explanation_length must be a number ≥ 0; .* \(and 21 more\)$"
    ):
        ratings_load(frame)


def test_flags_and_counts_are_parsed():
    frame = ratings_simulate(2, seed=0).astype({"excluded": object, "attention_failed": object})
    frame["excluded"] = ["TRUE", "no"] * 12
    frame["attention_failed"] = ["true", "2"] * 12
    df = ratings_load(frame)
    assert df["excluded"].tolist()[:2] == [True, False]
    assert df["attention_failed"].tolist()[:2] == [1, 2]
    frame.loc[0, "excluded"] = "maybe"
    with pytest.raises(AnalysisError, match="excluded must be true or false; row 0 has 'maybe'"):
        ratings_load(frame)


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("position", "position must be a whole number ≥ 0; line 4 has 'inf'"),
        ("attention_failed", "attention_failed must be a count of failed checks"),
    ],
)
def test_an_infinite_count_names_column_and_line(csv_path, column, message):
    def edit(frame):
        frame.loc[2, column] = "inf"
        return frame

    _rewrite(csv_path, edit)
    with pytest.raises(AnalysisError, match=message):
        ratings_load(csv_path)


def test_missing_times_are_allowed_but_negative_ones_are_not():
    frame = ratings_simulate(2, seed=0).astype({"seconds_on_item": object})
    frame.loc[0, "seconds_on_item"] = ""
    assert ratings_load(frame)["seconds_on_item"].isna().sum() == 1
    frame.loc[1, "seconds_on_item"] = -3
    with pytest.raises(
        AnalysisError, match="seconds_on_item must be empty or a number ≥ 0; row 1 has '-3'"
    ):
        ratings_load(frame)


def test_fewer_than_two_conditions_is_refused():
    frame = ratings_simulate(3, conditions=["only"], seed=0)
    with pytest.raises(AnalysisError, match="needs at least two; found only 'only'"):
        ratings_load(frame)


def test_an_unknown_reference_lists_the_conditions():
    with pytest.raises(
        AnalysisError,
        match="reference condition 'XX' is not in the data; conditions are: CF:original, ",
    ):
        ratings_load(ratings_simulate(2, seed=0), reference="XX")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "ratings file not found"),
        (b"", "ratings file is empty"),
        (b"\xff\xfe\x00bad", "not UTF-8 text"),
        (",".join(RATINGS_COLUMNS).encode() + b"\n", "the ratings have no rows"),
    ],
)
def test_unreadable_files_get_one_clear_message(tmp_path, content, message):
    path = tmp_path / "ratings.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AnalysisError, match=message):
        ratings_load(path)


def test_conditions_and_default_reference():
    assert conditions_check(pd.DataFrame({"condition": ["b", "a"]})) == ["a", "b"]
    assert reference_default(["MT+CF:revised", "CF:original", "MT:original"]) == "CF:original"
    assert reference_default(["MT+CF:revised", "MT:original"]) == "MT+CF:revised"


def test_an_export_without_character_lengths_still_loads(csv_path):
    _rewrite(csv_path, lambda df: df.drop(columns="explanation_chars"))
    df = ratings_load(csv_path)
    assert "explanation_chars" not in df.columns
    assert length_column(df, "words") == "explanation_length"
    with pytest.raises(
        AnalysisError,
        match=r"^regression.length = 'chars' needs the column explanation_chars, which these "
        r"ratings lack \(an export made before it was added\); export the ratings again or use "
        r"regression.length = 'words'$",
    ):
        length_column(df, "chars")


def test_character_lengths_are_numbers(csv_path):
    df = ratings_load(csv_path)
    assert df["explanation_chars"].dtype == float
    assert (df["explanation_chars"] > df["explanation_length"]).all()
    assert length_column(df, "chars") == "explanation_chars"

    def blank(frame):
        frame.loc[3, "explanation_chars"] = "long"
        return frame

    _rewrite(csv_path, blank)
    with pytest.raises(
        AnalysisError, match=r"^explanation_chars must be a number ≥ 0; line 5 has 'long'$"
    ):
        ratings_load(csv_path)
