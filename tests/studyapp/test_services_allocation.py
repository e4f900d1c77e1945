"""items_choose, the pure choice of one participant's items from the pool."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from studyapp.allocation import Pool, PoolItem, items_choose


def _pool(questions: int, conditions: int) -> list[list[int]]:
    """Mutable [explanation_id, condition_id, question_id, exposure] rows, every pair present."""
    return [[q * conditions + c, c, q, 0] for q in range(questions) for c in range(conditions)]


def _choose(
    rows: list[list[int]], conditions: int, *, seed: int, cap: int | None = None
) -> list[PoolItem] | None:
    return items_choose(
        [PoolItem(*row) for row in rows],
        condition_ids=list(range(conditions)),
        per_condition=3,
        rng=random.Random(seed),
        cap=cap,
    )


@settings(max_examples=60, deadline=None)
@given(
    questions=st.integers(min_value=12, max_value=30),
    exposures=st.lists(st.integers(min_value=0, max_value=4), min_size=120, max_size=120),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_it_takes_three_of_each_condition_on_different_questions(
    questions: int, exposures: list[int], seed: int
) -> None:
    rows = _pool(questions, 4)
    for row, exposure in zip(rows, exposures, strict=False):
        row[3] = exposure

    chosen = _choose(rows, 4, seed=seed)

    assert chosen is not None
    assert sorted(Counter(item.condition_id for item in chosen).values()) == [3, 3, 3, 3]
    assert len({item.question_id for item in chosen}) == 12


def test_it_takes_every_least_rated_explanation_it_can() -> None:
    rows = _pool(16, 4)
    for row in rows:
        row[3] = 1
    unrated = {0, 5, 10, 15}  # one per condition, each on its own question
    for row in rows:
        if row[0] in unrated:
            row[3] = 0

    chosen = _choose(rows, 4, seed=1)

    assert chosen is not None
    assert unrated <= {item.explanation_id for item in chosen}


def test_twenty_participants_in_a_row_keep_exposure_within_one_at_every_step() -> None:
    for seed in range(25):
        rows = _pool(16, 4)
        rng = random.Random(seed)
        for _ in range(20):
            chosen = items_choose(
                [PoolItem(*row) for row in rows], condition_ids=range(4), per_condition=3, rng=rng
            )
            assert chosen is not None
            for item in chosen:
                rows[item.explanation_id][3] += 1
            exposures = [row[3] for row in rows]
            assert max(exposures) - min(exposures) <= 1, seed


def test_a_cap_leaves_out_explanations_rated_often_enough() -> None:
    rows = _pool(13, 4)
    for row in rows:
        row[3] = 1 if row[2] == 0 else 0

    chosen = _choose(rows, 4, seed=3, cap=1)

    assert chosen is not None
    assert all(item.question_id != 0 for item in chosen)


def test_it_says_so_when_no_full_set_exists() -> None:
    assert _choose(_pool(11, 4), 4, seed=0) is None
    rows = _pool(12, 4)
    for row in rows[:10]:
        row[3] = 1
    assert _choose(rows, 4, seed=0, cap=1) is None


def test_the_same_seed_draws_the_same_items_from_objects_or_from_columns() -> None:
    rows = _pool(30, 4)
    for row in rows[::3]:
        row[3] = 1

    def choose(pool: Pool | list[PoolItem]) -> list[PoolItem] | None:
        return items_choose(pool, condition_ids=range(4), per_condition=3, rng=random.Random(7))

    from_objects = choose([PoolItem(*row) for row in rows])

    assert from_objects is not None
    assert choose(Pool(rows)) == from_objects
    assert all(isinstance(item.explanation_id, int) for item in from_objects)


def test_equally_rated_explanations_are_drawn_at_random() -> None:
    rows = _pool(40, 4)

    draws = {
        frozenset(item.explanation_id for item in _choose(rows, 4, seed=s) or []) for s in range(10)
    }

    assert len(draws) == 10


def test_explanations_of_other_conditions_are_never_chosen() -> None:
    rows = _pool(20, 5)  # condition 4 is not one of the four asked for

    chosen = _choose(rows, 4, seed=2)

    assert chosen is not None
    assert {item.condition_id for item in chosen} == {0, 1, 2, 3}


def test_the_pool_counts_what_each_condition_has_left_below_a_cap() -> None:
    rows = _pool(5, 2)
    rows[0][3] = 2  # condition 0, question 0: rated twice
    rows[3][3] = 1  # condition 1, question 1

    pool = Pool(rows)

    assert pool.open_per_condition([0, 1, 7], cap=2) == {0: 4, 1: 5, 7: 0}
    assert pool.open_per_condition([0, 1], cap=1) == {0: 4, 1: 4}
    assert pool.open_per_condition([0, 1], cap=None) == {0: 5, 1: 5}
    assert len(Pool([])) == 0
