from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer, ErrorbarContainer

from analysis.descriptives import descriptives
from analysis.figures import (
    figure_coefficients,
    figure_distributions,
    figure_interaction,
    figure_means,
    figure_png,
)
from analysis.load import DIMENSIONS
from analysis.regression import ols_fit

DVS = [*DIMENSIONS, "quality"]


def test_mean_bars_and_error_bars_are_the_descriptives(small_study):
    desc = descriptives(small_study, dvs=DVS)
    axes = figure_means(desc).axes[0]
    bars = [c for c in axes.containers if isinstance(c, BarContainer)]
    assert [b.get_label() for b in bars] == sorted(small_study["condition"].unique())
    for container in bars:
        rows = desc[desc["condition"] == container.get_label()]
        heights = [patch.get_height() for patch in container.patches]
        assert heights == pytest.approx(rows["mean"].to_list())
        segments = container.errorbar.lines[2][0].get_segments()
        half_lengths = [(seg[1][1] - seg[0][1]) / 2 for seg in segments]
        assert half_lengths == pytest.approx(rows["se"].to_list())


def test_box_medians_are_the_condition_medians(small_study):
    figure = figure_distributions(small_study, dims=DVS)
    medians = {
        line.get_gid(): line.get_ydata()[0]
        for ax in figure.axes
        for line in ax.lines
        if line.get_gid()
    }
    expected = small_study.groupby("condition")[DVS].median()
    assert len(medians) == len(DVS) * 4
    for dim in DVS:
        for condition in expected.index:
            assert medians[f"median:{dim}:{condition}"] == pytest.approx(
                expected.loc[condition, dim]
            )


def test_coefficient_markers_and_intervals_are_the_model_estimates(small_study):
    coef = ols_fit(small_study, reference="CF:original").coef
    axes = figure_coefficients({"OLS": coef}).axes[0]
    container = next(c for c in axes.containers if isinstance(c, ErrorbarContainer))
    shown = coef[coef["term"] != "Intercept"]
    assert container.lines[0].get_xdata() == pytest.approx(shown["estimate"].to_numpy())
    segments = container.lines[2][0].get_segments()
    assert [s[0][0] for s in segments] == pytest.approx(shown["ci_low"].to_list())
    assert [s[1][0] for s in segments] == pytest.approx(shown["ci_high"].to_list())
    assert [t.get_text() for t in axes.get_yticklabels()] == shown["term"].to_list()


def test_interaction_lines_are_mean_accuracy_per_size():
    runs = pd.DataFrame(
        {
            "method": ["mt", "mt", "cf", "cf"] * 3,
            "size": np.repeat([770, 60, 220], 4),
            "accuracy": [0.6, 0.62, 0.64, 0.66, 0.4, 0.42, 0.5, 0.52, 0.5, 0.54, 0.55, 0.57],
        }
    )
    axes = figure_interaction(runs).axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["60", "220", "770"]
    lines = {
        c.get_label(): c.lines[0].get_ydata()
        for c in axes.containers
        if isinstance(c, ErrorbarContainer)
    }
    assert lines["mt"] == pytest.approx([0.41, 0.52, 0.61])
    assert lines["cf"] == pytest.approx([0.51, 0.56, 0.65])


def test_figures_render_to_png(small_study):
    png = figure_png(figure_means(descriptives(small_study, dvs=DVS)))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
