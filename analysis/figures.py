"""Report figures, drawn on matplotlib Figure objects (Agg canvas, no pyplot state)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")


def _figure(width: float, height: float, *, constrained: bool = True) -> Figure:
    # Constrained layout fits long labels but costs about half a second on a grid of panels.
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained" if constrained else None)
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def figure_means(descriptives: pd.DataFrame, *, scale_points: int = 5) -> Figure:
    """Mean ± standard error per dimension (groups on the x axis) and condition (bars).

    ``descriptives`` is the table of :func:`analysis.descriptives.descriptives`; the y axis
    spans the rating scale, 1 to ``scale_points``. Bars are
    added condition by condition in sorted order, so ``axes.containers[i]`` holds the bars
    of the i-th condition.
    """
    dims = list(dict.fromkeys(descriptives["dimension"]))
    conditions = sorted(descriptives["condition"].unique())
    figure = _figure(max(7.0, 1.4 * len(dims)), 4.2)
    axes = figure.add_subplot()
    width = 0.8 / len(conditions)
    x = np.arange(len(dims))
    for i, condition in enumerate(conditions):
        rows = (
            descriptives[descriptives["condition"] == condition]
            .set_index("dimension")
            .reindex(dims)
        )
        axes.bar(
            x + (i - (len(conditions) - 1) / 2) * width,
            rows["mean"].to_numpy(),
            width,
            yerr=rows["se"].fillna(0).to_numpy(),
            capsize=2,
            label=condition,
            color=PALETTE[i % len(PALETTE)],
        )
    axes.set_xticks(x, dims, rotation=20, ha="right")
    axes.set_ylim(1, scale_points)
    axes.set_ylabel(f"mean rating (1–{scale_points}) ± SE")
    axes.legend(
        title="condition", fontsize="small", ncols=min(4, len(conditions)), loc="upper center"
    )
    return figure


def figure_distributions(
    ratings: pd.DataFrame,
    *,
    dims: Sequence[str],
    between: str = "condition",
    scale_points: int = 5,
) -> Figure:
    """Box plots of each dimension by condition (one panel per dimension, conditions sorted).

    The y axes span the rating scale, 1 to ``scale_points``, with half a point to spare.

    Median lines carry the gid ``median:<dimension>:<condition>``.
    """
    conditions = sorted(ratings[between].unique())
    columns = 3
    rows_n = int(np.ceil(len(dims) / columns))
    figure = _figure(4.0 * columns, 3.2 * rows_n, constrained=False)
    figure.subplots_adjust(left=0.05, right=0.98, top=0.95, bottom=0.13, hspace=0.55, wspace=0.2)
    axes_grid = figure.subplots(rows_n, columns, squeeze=False)
    for index, axes in enumerate(axes_grid.ravel()):
        if index >= len(dims):
            axes.set_visible(False)
            continue
        dim = dims[index]
        groups = [ratings.loc[ratings[between] == c, dim].to_numpy(dtype=float) for c in conditions]
        parts = axes.boxplot(groups, tick_labels=conditions, showmeans=True)
        for condition, median in zip(conditions, parts["medians"], strict=True):
            median.set_gid(f"median:{dim}:{condition}")
        axes.set_title(dim)
        axes.set_ylim(0.5, scale_points + 0.5)
        axes.tick_params(axis="x", labelrotation=25, labelsize="small")
    return figure


def figure_coefficients(
    models: dict[str, pd.DataFrame], *, exclude: Sequence[str] = ("Intercept",)
) -> Figure:
    """Coefficient estimates with 95% CIs, one marker series per model (e.g. OLS and mixed).

    ``models`` maps a label to a coefficient table (``term, estimate, ci_low, ci_high``).
    Terms are shown top to bottom in the order of the first table.
    """
    tables = {label: t[~t["term"].isin(exclude)] for label, t in models.items()}
    terms = list(dict.fromkeys(term for t in tables.values() for term in t["term"]))
    figure = _figure(7.5, 0.55 * len(terms) + 1.6)
    axes = figure.add_subplot()
    y = np.arange(len(terms))[::-1].astype(float)
    offset = 0.15
    for i, (label, table) in enumerate(tables.items()):
        rows = table.set_index("term").reindex(terms)
        estimate = rows["estimate"].to_numpy()
        errors = np.vstack(
            (estimate - rows["ci_low"].to_numpy(), rows["ci_high"].to_numpy() - estimate)
        )
        axes.errorbar(
            estimate,
            y + (i - (len(tables) - 1) / 2) * offset,
            xerr=errors,
            fmt="o",
            capsize=3,
            label=label,
            color=PALETTE[i % len(PALETTE)],
        )
    axes.axvline(0, color="grey", linewidth=0.8)
    axes.set_yticks(y, terms)
    axes.set_xlabel("estimate with 95% CI")
    axes.legend(fontsize="small")
    return figure


def figure_interaction(
    runs: pd.DataFrame, *, accuracy: str = "accuracy", method: str = "method", size: str = "size"
) -> Figure:
    """Interaction plot: mean accuracy (± SE over runs) by size, one line per method.

    Sizes are ordered numerically when they are numbers, otherwise as they first appear.
    """
    sizes = _size_order(runs[size])
    figure = _figure(6.5, 4.2)
    axes = figure.add_subplot()
    x = np.arange(len(sizes))
    for i, (name, group) in enumerate(runs.groupby(method, sort=True)):
        stats = (
            group.groupby(group[size].astype(str))[accuracy]
            .agg(["mean", "std", "count"])
            .reindex(sizes)
        )
        se = (stats["std"] / np.sqrt(stats["count"])).fillna(0).to_numpy()
        axes.errorbar(
            x,
            stats["mean"].to_numpy(),
            yerr=se,
            marker="o",
            capsize=3,
            label=str(name),
            color=PALETTE[i % len(PALETTE)],
        )
    axes.set_xticks(x, sizes)
    axes.set_xlabel(size)
    axes.set_ylabel(f"mean {accuracy} ± SE")
    axes.legend(title=method, fontsize="small")
    return figure


def _size_order(values: pd.Series) -> list[str]:
    text = values.astype(str)
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().all():
        return [str(v) for v in text.iloc[np.argsort(numbers.to_numpy(), kind="stable")].unique()]
    return list(dict.fromkeys(text))
