"""Whatever the input, the analysis answers with a result or one AnalysisError, never a crash."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.errors import AnalysisError
from analysis.load import (
    DIMENSIONS,
    OPTIONAL_COLUMNS,
    RATINGS_COLUMNS,
    ratings_dimensions,
    ratings_load,
)
from analysis.report import report_write
from analysis.simulate import ratings_simulate

BASE = ratings_simulate(3, seed=0).astype(object)
cell_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 9),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)
edits = st.lists(
    st.tuples(st.integers(0, len(BASE) - 1), st.sampled_from(RATINGS_COLUMNS), cell_values),
    max_size=6,
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(edits=edits, drop=st.sets(st.sampled_from(RATINGS_COLUMNS), max_size=2))
def test_loading_edited_exports_never_crashes(edits, drop):
    frame = BASE.copy()
    for row, column, value in edits:
        frame.loc[row, column] = value
    frame = frame.drop(columns=list(drop))
    try:
        df = ratings_load(frame)
    except AnalysisError as exc:
        message = str(exc)
    else:
        # A file's dimensions are its columns between the lengths and seconds_on_item, so
        # without one of the five it is a file of the other four.
        kept = ratings_dimensions(df)
        assert kept == tuple(d for d in DIMENSIONS if d not in drop)
        assert df[list(kept)].isin([1, 2, 3, 4, 5]).all().all()
        assert drop <= {*OPTIONAL_COLUMNS, *DIMENSIONS}
        return
    assert message
    assert "\n" not in message


@st.composite
def tiny_studies(draw) -> pd.DataFrame:
    n_participants = draw(st.integers(1, 5))
    conditions = ["A", "B", "C"][: draw(st.integers(1, 3))]
    items = draw(st.integers(1, 3))
    frame = ratings_simulate(
        n_participants, conditions=conditions, seed=0, items_per_condition=items
    )
    values = draw(st.lists(st.integers(1, 5), min_size=len(frame) * 5, max_size=len(frame) * 5))
    frame[list(DIMENSIONS)] = np.array(values).reshape(len(frame), 5)
    frame["attention_failed"] = draw(
        st.lists(st.integers(0, 2), min_size=len(frame), max_size=len(frame))
    )
    return frame


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(study=tiny_studies(), drop_outliers=st.booleans())
def test_reports_of_tiny_studies_are_complete_or_refused(tmp_path, study, drop_outliers):
    try:
        summary = report_write(study, tmp_path, drop_outliers=drop_outliers)
    except AnalysisError as exc:
        message = str(exc)
        assert "\n" not in message
        return
    json.loads(
        (tmp_path / "summary.json").read_text(),
        parse_constant=lambda c: (_ for _ in ()).throw(AssertionError(c)),
    )
    assert summary["n_ratings"] > 0
    html = (tmp_path / "report.html").read_text()
    assert " nan " not in html.lower()
