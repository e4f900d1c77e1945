"""Turning examples and teacher explanations into token ids once, and batching them fast.

``features_build`` renders every view of every example (see ``distillation.objectives``),
tokenises all texts of a view in one call of the fast tokenizer and keeps the ids as small
NumPy arrays; ``features_cached`` stores them on disk so that every seed of a student reuses
them. ``BatchCollator`` pads the rows of all views of a batch of examples into one set of
tensors (labels padded with -100, never the pad id) so that one forward pass serves the whole
objective; ``batches_length_grouped`` puts examples of similar length together so that little
of that pass is spent on padding.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distillation.objectives import (
    FACTUAL_EXPLANATIONS,
    IGNORE_INDEX,
    METHOD_VIEWS,
    VIEWS,
    method_check,
)
from distillation.types import Example, TeacherExplanations

ANSWER_PHRASE = "So the answer is"
CHOICE_LABELS = "abcdefghij"
TASK_PREFIX = {view: f"[{view}]" for view in VIEWS}
DATA_VARIANT_FIELD = {"original": "original", "revised": "revised"}


def question_render(example: Example) -> str:
    """``Question: …`` then ``Choices: (a) … (b) …`` as every view's input shows it."""
    choices = " ".join(
        f"({CHOICE_LABELS[index]}) {choice}" for index, choice in enumerate(example.choices)
    )
    return f"Question: {example.question}\nChoices: {choices}"


def view_input(view: str, example: Example, *, counterfactual_explanation: str = "") -> str:
    """The input text of ``view`` for ``example``."""
    text = f"{TASK_PREFIX[view]} {question_render(example)}"
    if view == "counterfactual":
        text += f"\nExplanation: {counterfactual_explanation}"
    return text


def factual_target(explanation: str, answer: str) -> str:
    return f"{explanation} {ANSWER_PHRASE} {answer}"


def answer_from_output(text: str) -> str:
    """The answer a generated text states: what follows the last "So the answer is", if any."""
    _head, phrase, tail = text.rpartition(ANSWER_PHRASE)
    return tail.strip() if phrase else text.strip()


def explanation_from_output(text: str) -> str:
    """The explanation part of a factual output (before the last "So the answer is")."""
    head, phrase, _tail = text.rpartition(ANSWER_PHRASE)
    return head.strip() if phrase else text.strip()


def counterfactual_choice(
    example: Example, teacher: TeacherExplanations, rng: random.Random
) -> str | None:
    """A genuinely wrong choice that the teacher explained, drawn with ``rng``; None if none.

    Candidates are the example's wrong choices themselves (compared by text, not by position),
    so the gold answer can never be drawn, wherever it sits among the choices and whatever
    extra keys the teacher's counterfactual table holds.
    """
    candidates = [
        choice
        for choice in example.wrong_choices
        if (teacher.counterfactuals.get(choice) or "").strip()
    ]
    return rng.choice(candidates) if candidates else None


@dataclass
class ViewRows:
    """The tokenised rows of one view: ids per example (``None`` where the view was skipped).

    ``targets`` are the real target ids, which also feed the decoder (shifted right);
    ``untrained[i]`` leading target tokens of row ``i`` are left out of the loss. Keeping the
    real ids matters: a masked label turned into the pad id would show the decoder pad tokens
    where generation later produces the answer phrase.
    """

    input_ids: list[np.ndarray | None]
    targets: list[np.ndarray | None]
    untrained: list[int]


@dataclass
class FeatureSet:
    """Every view a method trains on, tokenised, for a list of examples."""

    method: str
    data_variant: str
    example_ids: list[str]
    views: dict[str, ViewRows]
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.example_ids)

    def usable_indices(self) -> np.ndarray:
        """The examples with at least one view to train on."""
        usable = [
            index
            for index in range(len(self))
            if any(rows.input_ids[index] is not None for rows in self.views.values())
        ]
        return np.asarray(usable, dtype=np.int64)

    def lengths(self) -> np.ndarray:
        """Per example, the longest input plus the longest target over its views."""
        result = np.zeros(len(self), dtype=np.int64)
        for index in range(len(self)):
            inputs = [
                len(rows.input_ids[index])  # type: ignore[arg-type]
                for rows in self.views.values()
                if rows.input_ids[index] is not None
            ]
            labels = [
                len(rows.targets[index])  # type: ignore[arg-type]
                for rows in self.views.values()
                if rows.targets[index] is not None
            ]
            result[index] = max(inputs, default=0) + max(labels, default=0)
        return result


def _variant_explanation(teacher: TeacherExplanations | None, data_variant: str) -> str:
    if teacher is None:
        return ""
    text = getattr(teacher, DATA_VARIANT_FIELD[data_variant])
    return (text or "").strip()


def view_texts(
    examples: Sequence[Example],
    teacher: Mapping[str, TeacherExplanations],
    *,
    method: str,
    data_variant: str,
    seed: int,
    factual_explanation: str = "variant",
) -> tuple[dict[str, list[tuple[str, list[tuple[str, bool]]] | None]], dict[str, int]]:
    """The (input, target parts) of every view of every example, and the skip counts.

    A target is a list of (text, trained) parts: the counterfactual target's "So the answer is"
    part is marked untrained when the loss is to cover the answer tokens only. A view whose
    teacher text is empty or missing is ``None`` and counted in the skip counts.
    ``factual_explanation = "counterfactual_prompt"`` has MT+CF's factual view learn the
    teacher's ``gold`` explanation instead of the data variant's (CF keeps the variant's).
    """
    method_check(method)
    if data_variant not in DATA_VARIANT_FIELD:
        raise ValueError(f"unknown data variant {data_variant!r}")
    if factual_explanation not in FACTUAL_EXPLANATIONS:
        raise ValueError(f"unknown factual explanation source {factual_explanation!r}")
    gold_factual = method == "mt+cf" and factual_explanation == "counterfactual_prompt"
    rng = random.Random(seed)
    texts: dict[str, list[tuple[str, list[tuple[str, bool]]] | None]] = {
        view: [] for view in METHOD_VIEWS[method]
    }
    skipped = dict.fromkeys(METHOD_VIEWS[method], 0)
    for example in examples:
        record = teacher.get(example.id)
        explanation = _variant_explanation(record, data_variant)
        factual = ((record.gold if record else None) or "").strip() if gold_factual else explanation
        for view in METHOD_VIEWS[method]:
            item: tuple[str, list[tuple[str, bool]]] | None = None
            if view == "predict":
                item = (view_input(view, example), [(example.answer, True)])
            elif view == "explain" and explanation:
                item = (view_input(view, example), [(explanation, True)])
            elif view == "factual" and factual:
                item = (
                    view_input(view, example),
                    [(factual_target(factual, example.answer), True)],
                )
            elif view == "counterfactual" and record is not None:
                choice = counterfactual_choice(example, record, rng)
                if choice is not None:
                    cf_text = record.counterfactuals[choice].strip()
                    item = (
                        view_input(view, example, counterfactual_explanation=cf_text),
                        [(ANSWER_PHRASE, False), (choice, True)],
                    )
            if item is None:
                skipped[view] += 1
            texts[view].append(item)
    return texts, skipped


def features_build(
    examples: Sequence[Example],
    teacher: Mapping[str, TeacherExplanations],
    *,
    tokenizer: Any,
    method: str,
    data_variant: str,
    seed: int,
    max_input_length: int = 300,
    max_target_length: int = 300,
    counterfactual_answer_only: bool = False,
    factual_explanation: str = "variant",
) -> FeatureSet:
    """Tokenise every view of ``examples`` once.

    ``seed`` draws each example's counterfactual choice. Inputs and targets end with the
    end-of-sequence token; over-long ones are cut at the configured lengths.
    ``factual_explanation`` says what MT+CF's factual view learns (see ``view_texts``).
    """
    texts, skipped = view_texts(
        examples,
        teacher,
        method=method,
        data_variant=data_variant,
        seed=seed,
        factual_explanation=factual_explanation,
    )
    views: dict[str, ViewRows] = {}
    for view, items in texts.items():
        present = [item for item in items if item is not None]
        inputs = [
            _eos_terminated(ids, tokenizer.eos_token_id, max_input_length)
            for ids in _token_ids([item[0] for item in present], tokenizer)
        ]
        targets = _targets_tokenize([item[1] for item in present], tokenizer, max_target_length)
        rows = ViewRows(input_ids=[], targets=[], untrained=[])
        cursor = 0
        for item in items:
            if item is None:
                rows.input_ids.append(None)
                rows.targets.append(None)
                rows.untrained.append(0)
                continue
            target, n_untrained = targets[cursor]
            rows.input_ids.append(inputs[cursor])
            rows.targets.append(target)
            rows.untrained.append(n_untrained if counterfactual_answer_only else 0)
            cursor += 1
        views[view] = rows
    return FeatureSet(
        method=method,
        data_variant=data_variant,
        example_ids=[example.id for example in examples],
        views=views,
        skipped=skipped,
    )


def _token_ids(texts: list[str], tokenizer: Any) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []


def _eos_terminated(ids: Sequence[int], eos_id: int, max_length: int) -> np.ndarray:
    return np.asarray([*ids[: max_length - 1], eos_id], dtype=np.int64)


def _targets_tokenize(
    targets: list[list[tuple[str, bool]]], tokenizer: Any, max_length: int
) -> list[tuple[np.ndarray, int]]:
    """Token ids of multi-part targets and the number of leading tokens in untrained parts.

    Parts are tokenised separately and joined so that the boundary between the answer phrase
    and the answer is known exactly; tokenizers that split on whitespace first (SentencePiece,
    Metaspace) give the same pieces as for the joined text.
    """
    ids = _token_ids([text for parts in targets for text, _ in parts], tokenizer)
    result = []
    cursor = 0
    for parts in targets:
        row: list[int] = []
        n_untrained = 0
        for _text, trained in parts:
            if not trained and len(row) == n_untrained:
                n_untrained += len(ids[cursor])
            row.extend(ids[cursor])
            cursor += 1
        target = _eos_terminated(row, tokenizer.eos_token_id, max_length)
        result.append((target, min(n_untrained, len(target) - 1)))
    return result


def features_fingerprint(
    tokenizer: Any, settings: Mapping[str, Any], example_keys: list[str]
) -> str:
    """A key that changes whenever the cached token ids would.

    ``example_keys`` must carry each example's content and teacher texts, not only its id:
    the same ids with a corrected question or other teacher outputs tokenise differently.
    """
    digest = hashlib.sha256()
    vocab = sorted(tokenizer.get_vocab().items())
    digest.update(json.dumps([tokenizer.__class__.__name__, vocab]).encode())
    digest.update(json.dumps(dict(settings), sort_keys=True, default=str).encode())
    digest.update("\n".join(example_keys).encode())
    return digest.hexdigest()[:16]


def features_save(features: FeatureSet, path: Path) -> None:
    """Write ``features`` as one ``.npz`` file: concatenated ids plus lengths per view."""
    arrays: dict[str, Any] = {}
    for view, rows in features.views.items():
        for name, column in (("input_ids", rows.input_ids), ("targets", rows.targets)):
            present = [row for row in column if row is not None]
            arrays[f"{view}.{name}.lengths"] = np.asarray(
                [-1 if row is None else len(row) for row in column], dtype=np.int64
            )
            arrays[f"{view}.{name}.values"] = (
                np.concatenate(present) if present else np.zeros(0, dtype=np.int64)
            )
        arrays[f"{view}.untrained"] = np.asarray(rows.untrained, dtype=np.int64)
    meta = {
        "method": features.method,
        "data_variant": features.data_variant,
        "example_ids": features.example_ids,
        "views": list(features.views),
        "skipped": features.skipped,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    # np.savez appends ".npz" to names without it; write beside the target, then rename, so
    # an interrupted run never leaves a truncated cache behind.
    temporary = path.with_name(f"{path.stem}.partial.npz")
    np.savez(temporary, **arrays)
    temporary.replace(path)


def _column_unpack(lengths: np.ndarray, values: np.ndarray) -> list[np.ndarray | None]:
    column: list[np.ndarray | None] = []
    offset = 0
    for length in lengths.tolist():
        if length < 0:
            column.append(None)
        else:
            column.append(values[offset : offset + length])
            offset += length
    return column


def features_load(path: Path) -> FeatureSet:
    with np.load(path) as data:
        meta = json.loads(data["meta"].tobytes().decode())
        views = {
            view: ViewRows(
                input_ids=_column_unpack(
                    data[f"{view}.input_ids.lengths"], data[f"{view}.input_ids.values"]
                ),
                targets=_column_unpack(
                    data[f"{view}.targets.lengths"], data[f"{view}.targets.values"]
                ),
                untrained=data[f"{view}.untrained"].tolist(),
            )
            for view in meta["views"]
        }
    return FeatureSet(
        method=meta["method"],
        data_variant=meta["data_variant"],
        example_ids=meta["example_ids"],
        views=views,
        skipped=meta["skipped"],
    )


def features_cached(
    cache_dir: Path,
    examples: Sequence[Example],
    teacher: Mapping[str, TeacherExplanations],
    *,
    tokenizer: Any,
    **settings: Any,
) -> FeatureSet:
    """``features_build`` with the result kept in ``cache_dir`` under a content fingerprint."""
    keys = [
        json.dumps(
            [asdict(example), asdict(record) if (record := teacher.get(example.id)) else None],
            sort_keys=True,
        )
        for example in examples
    ]
    key = features_fingerprint(tokenizer, settings, keys)
    name = f"{settings['method'].replace('+', '_')}-{settings['data_variant']}-{key}.npz"
    path = cache_dir / name
    if path.is_file():
        return features_load(path)
    features = features_build(examples, teacher, tokenizer=tokenizer, **settings)
    features_save(features, path)
    return features


def pad_rows(rows: Sequence[np.ndarray], pad_value: int, *, width: int | None = None) -> np.ndarray:
    """Right-pad ``rows`` to ``width`` (default: the longest row)."""
    if width is None:
        width = max((len(row) for row in rows), default=0)
    out = np.full((len(rows), width), pad_value, dtype=np.int64)
    for index, row in enumerate(rows):
        out[index, : len(row)] = row
    return out


def rows_batch(
    inputs: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    untrained: Sequence[int],
    *,
    pad_token_id: int,
    decoder_start_token_id: int,
    input_width: int | None = None,
    target_width: int | None = None,
) -> dict[str, torch.Tensor]:
    """Model tensors for seq2seq rows: labels padded with -100, decoder inputs from targets."""
    input_ids = pad_rows(inputs, pad_token_id, width=input_width)
    lengths = np.asarray([len(row) for row in inputs])
    attention_mask = (np.arange(input_ids.shape[1])[None, :] < lengths[:, None]).astype(np.int64)
    target_ids = pad_rows(targets, IGNORE_INDEX, width=target_width)
    labels = target_ids.copy()
    for index, count in enumerate(untrained):
        labels[index, :count] = IGNORE_INDEX
    decoder_input_ids = np.empty_like(target_ids)
    decoder_input_ids[:, 0] = decoder_start_token_id
    decoder_input_ids[:, 1:] = target_ids[:, :-1]
    decoder_input_ids[decoder_input_ids == IGNORE_INDEX] = pad_token_id
    return {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(attention_mask),
        "decoder_input_ids": torch.from_numpy(decoder_input_ids),
        "labels": torch.from_numpy(labels),
    }


class BatchCollator:
    """Builds one combined batch with every view of a list of examples.

    The output holds ``input_ids``, ``attention_mask``, ``decoder_input_ids``, ``labels``
    (padding is -100, never the pad id) and ``view_ids`` (index into ``views``), rows in view
    order. Only array gathering and padding happens here; shuffling and grouping are done once
    per epoch on index arrays.
    """

    def __init__(
        self,
        features: FeatureSet,
        *,
        pad_token_id: int,
        decoder_start_token_id: int,
        views: Sequence[str] | None = None,
    ):
        self.features = features
        self.pad_token_id = pad_token_id
        self.decoder_start_token_id = decoder_start_token_id
        self.views = tuple(views) if views is not None else tuple(features.views)

    def __call__(self, example_indices: Sequence[int]) -> dict[str, torch.Tensor]:
        return self._batch(*self._rows(example_indices))

    def _rows(
        self, example_indices: Sequence[int]
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[int], list[int]]:
        inputs: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        untrained: list[int] = []
        view_ids: list[int] = []
        for view_id, view in enumerate(self.views):
            rows = self.features.views[view]
            for index in example_indices:
                row = rows.input_ids[index]
                if row is not None:
                    inputs.append(row)
                    targets.append(rows.targets[index])  # type: ignore[arg-type]
                    untrained.append(rows.untrained[index])
                    view_ids.append(view_id)
        return inputs, targets, untrained, view_ids

    def passes(
        self, example_indices: Sequence[int], *, max_passes: int = 4
    ) -> list[dict[str, torch.Tensor]]:
        """The same rows as ``__call__``, split into padding-efficient passes (``row_groups``)."""
        inputs, targets, untrained, view_ids = self._rows(example_indices)
        groups = row_groups(
            [len(r) for r in inputs], [len(r) for r in targets], max_groups=max_passes
        )
        return [
            self._batch(
                [inputs[i] for i in group],
                [targets[i] for i in group],
                [untrained[i] for i in group],
                [view_ids[i] for i in group],
            )
            for group in groups
        ]

    def _batch(
        self,
        inputs: list[np.ndarray],
        targets: list[np.ndarray],
        untrained: list[int],
        view_ids: list[int],
    ) -> dict[str, torch.Tensor]:
        batch = rows_batch(
            inputs,
            targets,
            untrained,
            pad_token_id=self.pad_token_id,
            decoder_start_token_id=self.decoder_start_token_id,
        )
        batch["view_ids"] = torch.tensor(view_ids, dtype=torch.long)
        return batch


def row_groups(
    input_lengths: Sequence[int],
    target_lengths: Sequence[int],
    *,
    max_groups: int = 4,
    decoder_weight: float = 2.0,
    pass_cost: float = 256.0,
) -> list[np.ndarray]:
    """Split a step's rows into forward passes that waste the least work on padding.

    The views of one example differ widely in length (a one-word answer beside a paragraph of
    explanation), so one tensor padded to the longest row of every view spends most of its
    work on padding. Rows are sorted by target then input length and cut into at most
    ``max_groups`` contiguous groups, minimising Σ rows × (longest input + ``decoder_weight`` ×
    longest target) + ``pass_cost`` per pass (dynamic programming over the cut points).
    ``decoder_weight`` reflects that a decoder position also pays for cross-attention and the
    vocabulary projection; ``pass_cost`` keeps tiny passes from paying off.
    """
    inputs = np.asarray(input_lengths)
    targets = np.asarray(target_lengths)
    order = np.lexsort((inputs, targets))
    n = len(order)
    if n == 0:
        return []
    sorted_inputs, sorted_targets = inputs[order], targets[order]
    # cost[i][j]: rows order[i:j] in one pass (targets ascending, so the last is the longest).
    cost = np.full((n + 1, n + 1), np.inf)
    for i in range(n):
        longest_input = 0
        for j in range(i + 1, n + 1):
            longest_input = max(longest_input, int(sorted_inputs[j - 1]))
            width = longest_input + decoder_weight * float(sorted_targets[j - 1])
            cost[i, j] = (j - i) * width + pass_cost
    best = np.full((max_groups + 1, n + 1), np.inf)
    cut = np.zeros((max_groups + 1, n + 1), dtype=np.int64)
    best[0, 0] = 0.0
    for groups in range(1, max_groups + 1):
        for j in range(1, n + 1):
            candidates = best[groups - 1, :j] + cost[:j, j]
            cut[groups, j] = int(np.argmin(candidates))
            best[groups, j] = candidates[cut[groups, j]]
    groups = int(np.argmin(best[1:, n])) + 1
    bounds = [n]
    for level in range(groups, 0, -1):
        bounds.append(int(cut[level, bounds[-1]]))
    bounds.reverse()
    return [order[start:end] for start, end in itertools.pairwise(bounds)]


def batches_length_grouped(
    indices: np.ndarray,
    lengths: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    group_factor: int = 50,
) -> list[np.ndarray]:
    """One epoch of batches: shuffled, with similar lengths grouped inside a batch.

    As in Hugging Face's length-grouped sampler: shuffle, cut into groups of
    ``batch_size * group_factor``, sort each group by length, split it into batches and shuffle
    the batches. The order depends only on ``seed`` and ``epoch`` so a resumed run replays it.
    """
    rng = np.random.default_rng([seed, epoch])
    shuffled = indices[rng.permutation(len(indices))]
    group = batch_size * group_factor
    batches: list[np.ndarray] = []
    for start in range(0, len(shuffled), group):
        chunk = shuffled[start : start + group]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]
