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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
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


class Pool:
    """A study's explanations as columns, one entry an explanation.

    A real study's pool holds thousands of explanations (1,221 CommonsenseQA questions in
    four conditions) and is read for every arriving participant, so it is kept as arrays
    rather than as thousands of objects.
    """

    __slots__ = ("condition_id", "explanation_id", "exposure", "question_id")

    def __init__(self, rows: Iterable[Sequence[int]]) -> None:
        """``rows``: (explanation_id, condition_id, question_id, exposure) tuples."""
        table = np.array(list(rows), dtype=np.int64).reshape(-1, 4)
        self.explanation_id: NDArray[np.int64] = table[:, 0]
        self.condition_id: NDArray[np.int64] = table[:, 1]
        self.question_id: NDArray[np.int64] = table[:, 2]
        self.exposure: NDArray[np.int64] = table[:, 3]

    @classmethod
    def of(cls, items: Iterable[PoolItem]) -> Pool:
        return cls(
            (item.explanation_id, item.condition_id, item.question_id, item.exposure)
            for item in items
        )

    def __len__(self) -> int:
        return len(self.explanation_id)

    def item(self, index: int) -> PoolItem:
        return PoolItem(
            explanation_id=int(self.explanation_id[index]),
            condition_id=int(self.condition_id[index]),
            question_id=int(self.question_id[index]),
            exposure=int(self.exposure[index]),
        )

    def open_per_condition(self, condition_ids: Iterable[int], cap: int | None) -> dict[int, int]:
        """How many explanations of each condition are still below ``cap`` ratings."""
        open_ = self.condition_id if cap is None else self.condition_id[self.exposure < cap]
        return {c: int(np.count_nonzero(open_ == c)) for c in condition_ids}


def items_choose(
    pool: Pool | Sequence[PoolItem],
    *,
    condition_ids: Iterable[int],
    per_condition: int,
    rng: random.Random,
    cap: int | None = None,
) -> list[PoolItem] | None:
    """Choose ``per_condition`` items of every condition, no question twice; None if impossible.

    ``cap`` leaves out explanations already rated (or held) ``cap`` times. The result is
    in condition order, ``per_condition`` items each.
    """
    if not isinstance(pool, Pool):
        pool = Pool.of(pool)
    conditions = [int(c) for c in condition_ids]
    eligible = np.isin(pool.condition_id, conditions)
    if cap is not None:
        eligible &= pool.exposure < cap
    index = np.flatnonzero(eligible)
    condition, question, exposure = (
        pool.condition_id[index],
        pool.question_id[index],
        pool.exposure[index],
    )
    members = [np.flatnonzero(condition == c) for c in conditions]
    if any(len(m) < per_condition for m in members):
        return None

    level = np.empty_like(exposure)
    for m in members:
        level[m] = exposure[m] - exposure[m].min()
    least_rated = level == 0
    questions, column = np.unique(question, return_inverse=True)
    slots = len(conditions) * per_condition
    if slots > len(questions):
        return None
    # In how many conditions each question still has a least-rated explanation, not
    # counting the explanation itself.
    least_rated_in = np.bincount(column, weights=least_rated, minlength=len(questions))
    overlap = least_rated_in[column] - least_rated
    value = level * LEVEL_COST - overlap * OVERLAP_BONUS

    noise = np.random.default_rng(rng.getrandbits(64))
    cost = np.full((slots, len(questions)), INFEASIBLE)
    item_at = np.full((len(conditions), len(questions)), -1, dtype=np.int64)
    for k, m in enumerate(members):
        rows = slice(k * per_condition, (k + 1) * per_condition)
        # Each slot of a condition gets its own noise so ties break independently.
        ties = noise.random((per_condition, len(m))) * TIE_NOISE
        cost[rows, column[m]] = value[m] + ties
        item_at[k, column[m]] = index[m]

    row_index, col_index = linear_sum_assignment(cost)
    if np.any(cost[row_index, col_index] >= INFEASIBLE):
        return None
    return [
        pool.item(int(item_at[r // per_condition, k]))
        for r, k in zip(row_index, col_index, strict=True)
    ]
