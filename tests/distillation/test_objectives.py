from __future__ import annotations

import math

import pytest
import torch

from distillation.config import TrainingConfig
from distillation.errors import ConfigError
from distillation.objectives import (
    IGNORE_INDEX,
    ObjectiveWeights,
    combined_loss,
    counterfactual_loss,
    method_check,
    multitask_loss,
    objective_loss,
    sequence_loss,
    view_weights,
    weighted_view_loss,
)


def _hand_token_loss(logits: list[float], target: int) -> float:
    """Cross-entropy of one position, written out: log-sum-exp minus the target logit."""
    return math.log(sum(math.exp(value) for value in logits)) - logits[target]


def _hand_sequence_loss(logits: torch.Tensor, labels: torch.Tensor) -> float:
    losses = [
        _hand_token_loss(logits[row, position].tolist(), int(labels[row, position]))
        for row in range(labels.shape[0])
        for position in range(labels.shape[1])
        if labels[row, position] != IGNORE_INDEX
    ]
    return sum(losses) / len(losses)


@pytest.fixture
def toy() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Four views, each a batch of two rows, three positions, a vocabulary of five."""
    generator = torch.Generator().manual_seed(7)
    views = {}
    for index, view in enumerate(("predict", "explain", "factual", "counterfactual")):
        logits = torch.randn(2, 3, 5, generator=generator)
        labels = torch.tensor([[1, 2, IGNORE_INDEX], [index, IGNORE_INDEX, IGNORE_INDEX]])
        views[view] = (logits, labels)
    return views


def test_sequence_loss_matches_a_hand_computation(toy):
    logits, labels = toy["explain"]
    assert sequence_loss(logits, labels).item() == pytest.approx(
        _hand_sequence_loss(logits, labels)
    )


def test_padding_positions_never_count_in_the_loss(toy):
    logits, labels = toy["explain"]
    changed = logits.clone()
    changed[labels == IGNORE_INDEX] = 100.0  # wildly different logits where the labels are padding
    assert sequence_loss(changed, labels).item() == pytest.approx(
        sequence_loss(logits, labels).item()
    )


def test_multitask_loss_is_alpha_weighted_predict_plus_explain(toy):
    predict = _hand_sequence_loss(*toy["predict"])
    explain = _hand_sequence_loss(*toy["explain"])
    loss = multitask_loss(sequence_loss(*toy["predict"]), sequence_loss(*toy["explain"]), alpha=0.3)
    assert loss.item() == pytest.approx(0.3 * predict + 0.7 * explain)


def test_counterfactual_loss_is_beta_weighted_factual_plus_counterfactual(toy):
    factual = _hand_sequence_loss(*toy["factual"])
    counter = _hand_sequence_loss(*toy["counterfactual"])
    loss = counterfactual_loss(
        sequence_loss(*toy["factual"]), sequence_loss(*toy["counterfactual"]), beta=0.3
    )
    assert loss.item() == pytest.approx(0.3 * factual + 0.7 * counter)


def test_combined_loss_is_gamma_weighted_multitask_plus_counterfactual(toy):
    hand = {view: _hand_sequence_loss(*pair) for view, pair in toy.items()}
    weights = ObjectiveWeights(alpha=0.5, beta=0.5, gamma=0.25)
    mt = 0.5 * hand["predict"] + 0.5 * hand["explain"]
    cf = 0.5 * hand["factual"] + 0.5 * hand["counterfactual"]
    losses = {view: sequence_loss(*pair) for view, pair in toy.items()}
    assert objective_loss("mt+cf", losses, weights).item() == pytest.approx(0.25 * mt + 0.75 * cf)
    assert combined_loss(torch.tensor(mt), torch.tensor(cf), gamma=0.25).item() == pytest.approx(
        0.25 * mt + 0.75 * cf
    )


@pytest.mark.parametrize("method", ["mt", "cf", "mt+cf"])
def test_one_pass_view_weighted_loss_equals_the_separate_view_losses(toy, method):
    weights = ObjectiveWeights(alpha=0.4, beta=0.7, gamma=0.6)
    per_view = view_weights(method, weights)
    views = list(per_view)
    # Stack every view's rows into one batch, as the collator does.
    logits = torch.cat([toy[view][0] for view in views])
    labels = torch.cat([toy[view][1] for view in views])
    view_ids = torch.tensor([index for index, _ in enumerate(views) for _ in range(2)])
    combined = weighted_view_loss(
        logits, labels, view_ids, torch.tensor([per_view[view] for view in views])
    )
    separate = objective_loss(method, {view: sequence_loss(*toy[view]) for view in toy}, weights)
    assert combined.item() == pytest.approx(separate.item(), rel=1e-6)


def test_a_view_absent_from_the_batch_adds_nothing(toy):
    logits, labels = toy["predict"]
    loss = weighted_view_loss(logits, labels, torch.tensor([0, 0]), torch.tensor([0.5, 0.5]))
    assert loss.item() == pytest.approx(0.5 * sequence_loss(logits, labels).item())


def test_view_weights_expand_the_nested_objective():
    weights = ObjectiveWeights(alpha=0.4, beta=0.25, gamma=0.6)
    assert view_weights("mt", weights) == pytest.approx({"predict": 0.4, "explain": 0.6})
    assert view_weights("cf", weights) == pytest.approx({"factual": 0.25, "counterfactual": 0.75})
    assert view_weights("mt+cf", weights) == pytest.approx(
        {"predict": 0.24, "explain": 0.36, "factual": 0.1, "counterfactual": 0.3}
    )


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("mt", {"predict": 0.5, "explain": 0.5}),
        ("cf", {"factual": 0.5, "counterfactual": 0.5}),
        # The paper's L_MT + L_CF: the four terms weigh the same.
        ("mt+cf", {"predict": 0.25, "explain": 0.25, "factual": 0.25, "counterfactual": 0.25}),
    ],
)
def test_the_paper_weights_of_each_method(method, expected):
    assert view_weights(method, ObjectiveWeights()) == expected
    assert view_weights(method, TrainingConfig().objective) == expected


def test_an_unknown_method_names_the_accepted_ones():
    with pytest.raises(ConfigError, match=r"'mtcf'.*mt, cf, mt\+cf"):
        method_check("mtcf")


def test_weights_outside_their_range_are_refused():
    with pytest.raises(ConfigError, match=r"training\.alpha"):
        ObjectiveWeights(alpha=1.5)
    with pytest.raises(ConfigError, match=r"training\.beta"):
        ObjectiveWeights(beta=-1.0)


def test_the_former_beta_of_one_is_refused_with_its_new_equivalent():
    # beta = 1.0 once weighed both CF terms alike; now it would drop the counterfactual loss.
    with pytest.raises(ConfigError, match=r"strictly between 0 and 1, got 1\.0.*0\.5 weighs both"):
        ObjectiveWeights(beta=1.0)
    with pytest.raises(ConfigError, match=r"training\.beta"):
        ObjectiveWeights(beta=0.0)
