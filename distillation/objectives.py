"""The training objectives: multitask (MT), counterfactual (CF) and their combination (MT+CF).

Each objective is a weighted sum of per-view sequence losses. A *view* is one way of turning an
example into an (input, target) pair:

- ``predict``: ``[predict]`` question → the gold answer (MT, after "Distilling step-by-step");
- ``explain``: ``[explain]`` question → the teacher's explanation (MT);
- ``factual``: ``[factual]`` question → "<explanation> So the answer is <gold>" (CF, after SCOTT;
  in MT+CF the explanation may be the teacher's gold-answer one from the counterfactual prompt,
  see ``FACTUAL_EXPLANATIONS``);
- ``counterfactual``: ``[counterfactual]`` question plus the teacher's explanation of a wrong
  choice → "So the answer is <that choice>" (CF).

With the paper's weights (alpha = beta = gamma = 0.5) MT+CF weighs its four views equally, as
the paper's L_combined = L_MT + L_CF with L_MT = L_answer + L_explanation and L_CF =
L_correct + L_incorrect does (up to a common factor).

A view's loss is the mean token cross-entropy over its non-padding label tokens in the batch,
which is what a separate ``model(**batch).loss`` per view computes. ``weighted_view_loss`` gets
the same number from a single forward pass over all views, so the fast path and the textbook
path optimise one objective.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from distillation.errors import ConfigError

IGNORE_INDEX = -100

METHODS = ("mt", "cf", "mt+cf")
DATA_VARIANTS = ("original", "revised")
# What MT+CF's factual view learns: the data variant's explanation, or (as in the paper's
# trainer) the teacher's explanation of the gold answer written with the counterfactual prompt.
# CF alone always learns the data variant's explanation in its factual view.
FACTUAL_EXPLANATIONS = ("variant", "counterfactual_prompt")
VIEWS = ("predict", "explain", "factual", "counterfactual")
METHOD_VIEWS: dict[str, tuple[str, ...]] = {
    "mt": ("predict", "explain"),
    "cf": ("factual", "counterfactual"),
    "mt+cf": ("predict", "explain", "factual", "counterfactual"),
}
# The view whose generated output a method's accuracy is read from, and the view that writes
# the explanation a study participant sees. MT+CF answers and explains like MT; its CF terms
# shape what the explain view learns.
PREDICTION_VIEW = {"mt": "predict", "cf": "factual", "mt+cf": "predict"}
EXPLANATION_VIEW = {"mt": "explain", "cf": "factual", "mt+cf": "explain"}


@dataclass(frozen=True)
class ObjectiveWeights:
    """Mixing weights of the objectives."""

    alpha: float = 0.5  # MT: alpha·L_predict + (1 − alpha)·L_explain
    beta: float = 0.5  # CF: beta·L_factual + (1 − beta)·L_counterfactual
    gamma: float = 0.5  # MT+CF: gamma·L_MT + (1 − gamma)·L_CF

    def __post_init__(self) -> None:
        for name in ("alpha", "gamma"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"training.{name} must be between 0 and 1, got {value}")
        if not 0.0 < self.beta < 1.0:
            # Configurations written for the former L_factual + beta·L_counterfactual often
            # say beta = 1.0, which would now silently drop the counterfactual loss.
            raise ConfigError(
                f"training.beta must be strictly between 0 and 1, got {self.beta}: the CF loss "
                "is beta·L_factual + (1 − beta)·L_counterfactual, and 0.5 weighs both alike "
                "(what beta = 1.0 meant when the loss was L_factual + beta·L_counterfactual)"
            )


def method_check(method: str) -> str:
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; accepted values: {', '.join(METHODS)}")
    return method


def view_weights(method: str, weights: ObjectiveWeights) -> dict[str, float]:
    """The weight of each view's loss in ``method``'s objective (expanding the nested sums)."""
    method_check(method)
    a, b, g = weights.alpha, weights.beta, weights.gamma
    if method == "mt":
        return {"predict": a, "explain": 1.0 - a}
    if method == "cf":
        return {"factual": b, "counterfactual": 1.0 - b}
    return {
        "predict": g * a,
        "explain": g * (1.0 - a),
        "factual": (1.0 - g) * b,
        "counterfactual": (1.0 - g) * (1.0 - b),
    }


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every label position, 0 where the label is ``IGNORE_INDEX``.

    Computed in float32 even under mixed precision: a bf16 log-softmax over a large vocabulary
    loses the digits that separate close losses.
    """
    flat = F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)),
        labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    )
    return flat.reshape(labels.shape)


def sequence_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the non-ignored label tokens of a batch (one view's loss)."""
    mask = labels != IGNORE_INDEX
    count = mask.sum()
    if count == 0:
        return logits.new_zeros((), dtype=torch.float32)
    return token_losses(logits, labels).sum() / count


def multitask_loss(
    predict: torch.Tensor, explain: torch.Tensor, *, alpha: float = 0.5
) -> torch.Tensor:
    """MT: alpha·L_predict + (1 − alpha)·L_explain."""
    return alpha * predict + (1.0 - alpha) * explain


def counterfactual_loss(
    factual: torch.Tensor, counterfactual: torch.Tensor, *, beta: float = 0.5
) -> torch.Tensor:
    """CF: beta·L_factual + (1 − beta)·L_counterfactual."""
    return beta * factual + (1.0 - beta) * counterfactual


def combined_loss(mt: torch.Tensor, cf: torch.Tensor, *, gamma: float = 0.5) -> torch.Tensor:
    """MT+CF: gamma·L_MT + (1 − gamma)·L_CF."""
    return gamma * mt + (1.0 - gamma) * cf


def objective_loss(
    method: str, view_losses: Mapping[str, torch.Tensor], weights: ObjectiveWeights
) -> torch.Tensor:
    """A method's loss from separately computed view losses (the reference computation)."""
    method_check(method)
    if method == "mt":
        return multitask_loss(view_losses["predict"], view_losses["explain"], alpha=weights.alpha)
    if method == "cf":
        return counterfactual_loss(
            view_losses["factual"], view_losses["counterfactual"], beta=weights.beta
        )
    return combined_loss(
        multitask_loss(view_losses["predict"], view_losses["explain"], alpha=weights.alpha),
        counterfactual_loss(
            view_losses["factual"], view_losses["counterfactual"], beta=weights.beta
        ),
        gamma=weights.gamma,
    )


def view_token_sums(
    logits: torch.Tensor, labels: torch.Tensor, view_ids: torch.Tensor, n_views: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per view: the summed token losses and the number of label tokens of these rows."""
    losses = token_losses(logits, labels)
    mask = (labels != IGNORE_INDEX).to(losses.dtype)
    sums = losses.new_zeros(n_views).index_add(0, view_ids, (losses * mask).sum(dim=1))
    counts = losses.new_zeros(n_views).index_add(0, view_ids, mask.sum(dim=1))
    return sums, counts


def view_sums_loss(
    sums: torch.Tensor, counts: torch.Tensor, view_weight: torch.Tensor
) -> torch.Tensor:
    """Σ_v weight_v · sums_v / counts_v over the views that have label tokens."""
    present = counts > 0
    weight = view_weight.to(sums.dtype)
    return (weight[present] * sums[present] / counts[present]).sum()


def weighted_view_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    view_ids: torch.Tensor,
    view_weight: torch.Tensor,
) -> torch.Tensor:
    """The objective over a batch that mixes the rows of several views in one forward pass.

    ``view_ids[i]`` is the view of row ``i`` (an index into ``view_weight``). Each view's token
    losses are averaged over that view's own label tokens, then weighted, which equals running
    one pass per view and combining the view losses. A view without rows in the batch adds
    nothing, as a separate pass over an empty batch would. Rows split over several passes give
    the same result through ``view_token_sums`` summed over the passes, then ``view_sums_loss``.
    """
    sums, counts = view_token_sums(logits, labels, view_ids, view_weight.numel())
    return view_sums_loss(sums, counts, view_weight)
