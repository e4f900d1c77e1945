"""Choosing one participant's items from the pool: a pure function, no database.

Each participant needs ``per_condition`` explanations from every condition, all for
different questions. Among the sets that satisfy this we want the one that keeps the
pool balanced: explanations rated least so far come first, so exposure counts within a
condition never drift more than one apart. Because one question can serve only one
condition per participant, choosing condition by condition greedily can paint itself into
a corner (two conditions whose last least-rated explanations share a question). So the
choice is made for all conditions at once as a minimum-cost assignment of
(condition, slot) rows to question columns:

* an explanation costs ``LEVEL_COST`` per rating it has above its condition's least-rated
  explanation, so the solver takes every least-rated explanation it can;
* among equally rated ones, questions that are still least-rated in other conditions too
  are preferred: using them now spreads the remaining least-rated explanations over
  different questions, which keeps later participants' choices free of collisions;
* a tiny random amount breaks the remaining ties, so equal explanations are drawn at random.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

LEVEL_COST = 1_000.0
OVERLAP_BONUS = 1.0
TIE_NOISE = 0.01
INFEASIBLE = 1e12


@dataclass(frozen=True)
class PoolItem:
    explanation_id: int
    condition_id: int
    question_id: int
    exposure: int


def items_choose(
    pool: Sequence[PoolItem],
    *,
    condition_ids: Sequence[int],
    per_condition: int,
    rng: random.Random,
    cap: int | None = None,
) -> list[PoolItem] | None:
    """Choose ``per_condition`` items of every condition, no question twice; None if impossible.

    ``cap`` leaves out explanations already rated (or held) ``cap`` times.
    """
    eligible = [item for item in pool if cap is None or item.exposure < cap]
    by_condition: dict[int, list[PoolItem]] = defaultdict(list)
    for item in eligible:
        by_condition[item.condition_id].append(item)
    if any(len(by_condition[c]) < per_condition for c in condition_ids):
        return None

    least = {c: min(item.exposure for item in by_condition[c]) for c in condition_ids}
    least_rated_in: dict[int, int] = defaultdict(int)
    for item in eligible:
        if item.exposure == least[item.condition_id]:
            least_rated_in[item.question_id] += 1

    questions = sorted({item.question_id for item in eligible})
    column = {q: i for i, q in enumerate(questions)}
    rows = [c for c in condition_ids for _ in range(per_condition)]
    if len(rows) > len(questions):
        return None

    cost = np.full((len(rows), len(questions)), INFEASIBLE)
    chosen_item: dict[tuple[int, int], PoolItem] = {}
    for c in condition_ids:
        for item in by_condition[c]:
            level = item.exposure - least[c]
            overlap = least_rated_in[item.question_id] - (1 if level == 0 else 0)
            value = level * LEVEL_COST - overlap * OVERLAP_BONUS
            chosen_item[(c, column[item.question_id])] = item
            for r, row_condition in enumerate(rows):
                if row_condition == c:
                    # Each slot of a condition gets its own noise so ties break independently.
                    cost[r, column[item.question_id]] = value + rng.random() * TIE_NOISE

    row_index, col_index = linear_sum_assignment(cost)
    if any(cost[r, k] >= INFEASIBLE for r, k in zip(row_index, col_index, strict=True)):
        return None
    return [chosen_item[(rows[r], k)] for r, k in zip(row_index, col_index, strict=True)]
