"""Simulated rating studies with known effects, for tests and benchmarks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError
from analysis.load import DIMENSIONS
from studyformats.ratings import (
    DEFAULT_SCALE_POINTS,
    SCALE_POINTS_COLUMN,
    RatingsFormatError,
    ratings_header,
)

DEFAULT_CONDITIONS = ("CF:original", "MT:original", "MT+CF:original", "MT+CF:revised")


def ratings_simulate(
    n_participants: int,
    conditions: Sequence[str] = DEFAULT_CONDITIONS,
    effects: Mapping[str, Mapping[str, float]] | None = None,
    seed: int = 0,
    *,
    items_per_condition: int = 3,
    participant_sd: float = 0.5,
    noise_sd: float = 0.9,
    length_effect: float = 0.0,
    covariates: bool = False,
    dimensions: Sequence[str] = DIMENSIONS,
    scale_points: int = DEFAULT_SCALE_POINTS,
) -> pd.DataFrame:
    """Simulate a ratings export (the ratings-CSV columns of docs/formats.md) with known condition effects.

    Each participant rates ``items_per_condition`` explanations from every condition,
    never the same question twice, in a random order. A rating is a latent score
    ``middle + participant intercept + effect[condition][dimension] + length_effect * z(length)
    + noise`` rounded and clipped to the scale (``middle`` is its centre, 3 on the 1–5
    scale), so an effect of 0.5 moves the mean by somewhat less than 0.5 scale points near
    the ends of the scale.

    Parameters
    ----------
    n_participants : int
        Number of participants (each contributes ``len(conditions) * items_per_condition`` rows).
    conditions : sequence of str
        Condition names.
    effects : mapping, optional
        ``{condition: {dimension: shift}}`` on the latent scale; missing entries are 0.
    seed : int
        Seed of the local random generator; the same seed gives the same data.
    items_per_condition : int
        Rated items per condition and participant.
    participant_sd, noise_sd : float
        Standard deviations of the participant intercept and of the item-level noise.
    length_effect : float
        Shift per standard deviation of explanation length (in words).
    covariates : bool
        Add demographic covariate columns ``age`` (years) and ``gender``.
    dimensions : sequence of str
        The dimension keys, one rating column each (default: the five of plain-5).
    scale_points : int
        Points of the rating scale; other than 5, the frame has a ``scale_points`` column
        after ``excluded``, as an export of such a study has.

    Returns
    -------
    pandas.DataFrame
        One row per rated item, in the ratings-export column order. Every explanation has
        a length in words and in characters (4.5–6.5 characters a word, spaces included).

    Examples
    --------
    >>> df = ratings_simulate(20, effects={"CF:original": {"completeness": 0.8}}, seed=1)
    >>> len(df), sorted(df["condition"].unique())[0]
    (240, 'CF:original')
    >>> df = ratings_simulate(2, dimensions=["faithful", "clear", "useful"], scale_points=7)
    >>> list(df.columns[8:]), int(df["faithful"].max()) <= 7
    (['faithful', 'clear', 'useful', 'seconds_on_item', 'attention_failed', 'excluded', 'scale_points'], True)
    """
    if n_participants < 1:
        raise AnalysisError("n_participants must be at least 1")
    if len(set(conditions)) != len(conditions) or not conditions:
        raise AnalysisError("conditions must be a non-empty list of distinct names")
    effects = effects or {}
    unknown = [c for c in effects if c not in conditions]
    if unknown:
        raise AnalysisError(f"effects name unknown conditions: {', '.join(unknown)}")
    dimensions = tuple(dimensions)
    try:
        ratings_header(dimensions, scale_points)
    except RatingsFormatError as exc:
        raise AnalysisError(str(exc)) from None
    unknown = sorted({d for shifts in effects.values() for d in shifts if d not in dimensions})
    if unknown:
        raise AnalysisError(
            f"effects name unknown dimensions: {', '.join(unknown)}; dimensions are: "
            + ", ".join(dimensions)
        )
    rng = np.random.default_rng(seed)
    n_cond = len(conditions)
    per_participant = n_cond * items_per_condition
    n = n_participants * per_participant
    # Enough questions that nobody sees one twice: each participant gets a random
    # sample of distinct questions, assigned to conditions in blocks.
    n_questions = max(4 * per_participant, 60)
    participant_idx = np.repeat(np.arange(n_participants), per_participant)
    condition_idx = np.tile(np.repeat(np.arange(n_cond), items_per_condition), n_participants)
    question_idx = np.argsort(rng.random((n_participants, n_questions)), axis=1)[
        :, :per_participant
    ].ravel()
    position = np.argsort(rng.random((n_participants, per_participant)), axis=1).ravel() + 1
    # Every (question, condition) pair is one explanation with a fixed length.
    lengths_table = rng.integers(8, 61, size=(n_questions, n_cond))
    length = lengths_table[question_idx, condition_idx]
    length_z = (length - lengths_table.mean()) / lengths_table.std()
    intercept = rng.normal(0.0, participant_sd, n_participants)[participant_idx]
    columns: dict[str, object] = {
        "participant": np.char.add("p", np.char.zfill((participant_idx + 1).astype(str), 5)),
        "study": np.full(n, "simulated"),
        "position": position,
        "question_id": np.char.add("q", (question_idx + 1).astype(str)),
        "condition": np.asarray(conditions, dtype=object)[condition_idx],
        "explanation_id": question_idx * n_cond + condition_idx + 1,
        "explanation_length": length,
    }
    middle = (1 + scale_points) / 2
    for dim in dimensions:
        shift = np.array([effects.get(c, {}).get(dim, 0.0) for c in conditions])[condition_idx]
        latent = middle + intercept + shift + length_effect * length_z + rng.normal(0, noise_sd, n)
        columns[dim] = np.clip(np.rint(latent), 1, scale_points).astype(int)
    columns["seconds_on_item"] = np.round(rng.lognormal(np.log(20.0), 0.5, n), 1)
    fails = rng.choice([0, 1, 2], p=[0.9, 0.07, 0.03], size=n_participants)
    columns["attention_failed"] = fails[participant_idx]
    columns["excluded"] = np.zeros(n, dtype=bool)
    if scale_points != DEFAULT_SCALE_POINTS:
        columns[SCALE_POINTS_COLUMN] = np.full(n, scale_points)
    if covariates:
        columns["age"] = rng.integers(18, 70, n_participants)[participant_idx]
        columns["gender"] = rng.choice(
            ["female", "male", "other"], p=[0.48, 0.48, 0.04], size=n_participants
        )[participant_idx]
    # Drawn last, so that every other column equals what the same seed gave before.
    chars_per_word = rng.uniform(4.5, 6.5, size=(n_questions, n_cond))
    frame = pd.DataFrame(columns)
    frame.insert(
        list(frame.columns).index("explanation_length") + 1,
        "explanation_chars",
        np.rint(length * chars_per_word[question_idx, condition_idx]).astype(int),
    )
    return frame
