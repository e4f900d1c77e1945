"""What the report's post-hoc and reliability sections show, looked up for the templates.

These sections join summary.json with the tables (post-hoc records, the correlation
matrix) and with the reasons of statistics that could not be computed; the templates
only format what these functions return.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import pandas as pd


def posthoc_view(summary: dict[str, Any], tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The pairwise comparisons of every dimension, as the post-hoc tables show them.

    Returns
    -------
    dict
        ``methods``: ``(method, column headers)`` in the order shown (``tukey``, ``dunn``,
        ``vda``; empty when the plan runs none); ``headers``: the columns of each
        dimension's table; ``dimensions``: per dimension its
        ``name``, ``not_run`` (the reason when no method ran for it, else None),
        ``skipped`` (method → reason it was not run), ``reasons`` (method → why its
        statistic is not computable, or None) and ``pairs``: per pair of conditions its
        ``label`` and its ``tukey`` record, ``dunn`` records (one per correction) and
        ``vda`` record, each None where absent.

    Examples
    --------
    >>> summary = {"dimensions": ["x"], "conditions": ["a", "b"], "vda": None,
    ...            "posthoc_not_run": [], "not_computable": [],
    ...            "plan": {"settings": {"tests": {"posthoc": ["tukey"], "corrections": []}}}}
    >>> tukey = pd.DataFrame([{"dimension": "x", "method": "tukey", "a": "a", "b": "b",
    ...                        "mean_diff": 0.5, "q": 2.0, "p_adj": 0.2}])
    >>> view = posthoc_view(summary, {"tukey": tukey})
    >>> [m for m, _ in view["methods"]], view["dimensions"][0]["pairs"][0]["tukey"]["q"]
    (['tukey'], 2.0)
    """
    records: list[dict[str, Any]] = [
        {str(k): v for k, v in r.items()}
        for name in ("tukey", "dunn")
        if name in tables and "method" in tables[name]
        for r in tables[name].to_dict("records")
    ]
    found = {(r["dimension"], r["method"], r["a"], r["b"]): r for r in records}
    tests = summary["plan"]["settings"]["tests"]
    corrections = [f"dunn-{c}" for c in tests["corrections"]] if "dunn" in tests["posthoc"] else []
    vda = summary["vda"]
    not_run = {(r["dimension"], r["method"]): r["reason"] for r in summary["posthoc_not_run"]}
    methods: list[tuple[str, list[str]]] = []
    if "tukey" in tests["posthoc"]:
        methods.append(("tukey", ["mean diff", "Tukey q", "Tukey p"]))
    if corrections:
        adjusted = [f"Dunn p ({c.removeprefix('dunn-').capitalize()})" for c in corrections]
        methods.append(("dunn", ["Dunn z", "Dunn p", *adjusted]))
    if vda is not None:
        methods.append(("vda", ["A", "magnitude"]))
    problems = summary["not_computable"]
    dimensions = []
    for dv in summary["dimensions"]:
        skipped = {m: not_run[(dv, m)] for m, _ in methods if (dv, m) in not_run}
        reasons = {
            "tukey": reason_find(problems, f"tukey {dv}"),
            "dunn": reason_find(problems, f"{corrections[0]} {dv}") if corrections else None,
            "vda": reason_find(problems, f"vda {dv}"),
        }
        pairs = [
            {
                "label": f"{a} vs {b}",
                "tukey": found.get((dv, "tukey", a, b)),
                "dunn": [found.get((dv, c, a, b)) for c in corrections],
                "vda": next(
                    (p for p in (vda or {}).get(dv) or [] if (p["a"], p["b"]) == (a, b)), None
                ),
            }
            for a, b in combinations(summary["conditions"], 2)
        ]
        everything_skipped = bool(methods) and len(skipped) == len(methods)
        dimensions.append(
            {
                "name": dv,
                "not_run": skipped[methods[0][0]] if everything_skipped else None,
                "skipped": skipped,
                "reasons": reasons,
                "pairs": pairs,
            }
        )
    headers = ["pair (a vs b)", *(h for _, columns in methods for h in columns)]
    return {"methods": methods, "headers": headers, "dimensions": dimensions}


def correlations_view(correlations: pd.DataFrame) -> dict[str, Any]:
    """The Pearson correlations between dimensions as a square matrix, in the table's order.

    Examples
    --------
    >>> table = pd.DataFrame({"method": ["pearson"] * 4, "a": ["x", "x", "y", "y"],
    ...                       "b": ["x", "y", "x", "y"], "r": [1.0, 0.4, 0.4, 1.0]})
    >>> correlations_view(table)
    {'dimensions': ['x', 'y'], 'rows': [('x', [1.0, 0.4]), ('y', [0.4, 1.0])]}
    """
    pearson = correlations[correlations["method"] == "pearson"].pivot(
        index="a", columns="b", values="r"
    )
    items = list(dict.fromkeys(correlations["a"]))
    pearson = pearson.reindex(index=items, columns=items)
    return {
        "dimensions": items,
        "rows": [(a, [float(pearson.loc[a, b]) for b in items]) for a in items],
    }


def reason_find(problems: list[dict[str, str]] | None, what: str) -> str | None:
    """Why the statistic ``what`` could not be computed, from a ``not_computable`` list.

    Examples
    --------
    >>> reason_find([{"what": "vda x", "reason": "one condition"}], "vda x")
    'one condition'
    """
    return next((p["reason"] for p in problems or [] if p["what"] == what), None)
