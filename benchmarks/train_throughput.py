"""Training throughput of the student objectives: the project's batching against separate passes.

Fixed setting (so that others can reproduce the figures): a T5-v1.1-style model with random
weights (d_model 256, d_ff 1024, 4 encoder and 4 decoder layers, 4 heads, d_kv 64), a Unigram
tokenizer of 8,000 pieces trained on the training text, the first 2,000 rows of
``../shared/data/teacher/llama2-13b/cqa-train`` (original explanations), batch size 8, fp32 on
CPU, 5 warm-up steps then 60 timed steps with AdamW.

For MT, CF and MT+CF it measures

* ``fast``: the training loop's path: token ids cached once, length-grouped batches, every
  view of a batch in one dynamically padded forward pass, per-view loss weights;
* ``baseline``: one forward pass per view (four per MT+CF step) on rows padded to the longest
  row of their chunk of 1,000, as the published trainer tokenises them.

Throughput counts non-padding tokens only (input tokens with attention plus label tokens that
are not -100) per second of training step. Peak memory is the peak resident set size of a fresh
process per measurement. "Equal loss" is checked twice: both paths give the same loss on the
same batch from the same weights, and the mean timed loss of each path is printed. The last line
is one JSON object with all figures.

Run from the project root: ``.venv/bin/python benchmarks/train_throughput.py``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "teacher" / "llama2-13b" / "cqa-train"
METHODS = ("mt", "cf", "mt+cf")
CHUNK_ROWS = 1000
MODEL = {"d_model": 256, "d_ff": 1024, "num_layers": 4, "num_heads": 4, "d_kv": 64}


def prepare(data: Path, rows: int, vocab_size: int, work: Path) -> dict[str, Any]:
    """Import the teacher rows, train the tokenizer and save both for the measuring processes."""
    from distillation.data import examples_load, hf_shard_dirs
    from distillation.features import view_texts
    from distillation.importing import teacher_outputs_import
    from distillation.store import teacher_explanations_load
    from distillation.students import tokenizer_train

    started = time.perf_counter()
    examples = examples_load(data, format="hf", limit=rows)
    store = work / "teacher"
    wanted = {example.id for example in examples}
    for shard in hf_shard_dirs(data):  # only as many shards as the first `rows` rows need
        teacher_outputs_import(shard, store, teacher="benchmark")
        if wanted <= set(teacher_explanations_load(store)):
            break
    teacher = teacher_explanations_load(store)
    texts = []
    views, _ = view_texts(examples, teacher, method="mt+cf", data_variant="original", seed=0)
    for items in views.values():
        for item in items:
            if item is not None:
                texts.append(item[0])
                texts.append(" ".join(part for part, _ in item[1]))
    tokenizer = tokenizer_train(texts, vocab_size=vocab_size)
    tokenizer.save_pretrained(str(work / "tokenizer"))
    return {"seconds": time.perf_counter() - started, "vocab": len(tokenizer)}


def _setup(work: Path, rows: int, method: str) -> tuple[Any, Any, Any, Any]:
    from transformers import PreTrainedTokenizerFast

    from distillation.data import examples_load
    from distillation.features import features_build
    from distillation.store import teacher_explanations_load

    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(work / "tokenizer"))
    examples = examples_load(Path(os.environ["BENCH_DATA"]), format="hf", limit=rows)
    teacher = teacher_explanations_load(work / "teacher")
    features = features_build(
        examples,
        teacher,
        tokenizer=tokenizer,
        method=method,
        data_variant="original",
        seed=0,
        max_input_length=512,
        max_target_length=256,
    )
    return tokenizer, examples, teacher, features


def _model(tokenizer: Any) -> Any:
    from distillation.students import TinyT5Config, tiny_t5_build

    return tiny_t5_build(tokenizer, TinyT5Config(vocab_size=len(tokenizer), **MODEL), seed=0)


def _separate_losses(
    model: Any, padded: dict[str, Any], examples: list[int]
) -> tuple[dict[str, Any], int]:
    """One forward pass per view over its pre-padded rows; returns the losses and the tokens."""
    import torch

    from distillation.features import pad_rows
    from distillation.objectives import IGNORE_INDEX, VIEWS

    losses = dict.fromkeys(VIEWS, torch.tensor(0.0))
    tokens = 0
    for view, (inputs, labels) in padded.items():
        chosen = [i for i in examples if i in inputs]
        if not chosen:
            continue  # no row of this view in the batch: nothing to add, as in the fast path
        # Rows come padded to their chunk's longest; a batch that spans two chunks is padded
        # once more to the wider one, as a padding collator does.
        input_ids = torch.from_numpy(pad_rows([inputs[i] for i in chosen], 0))
        label_ids = torch.from_numpy(pad_rows([labels[i] for i in chosen], IGNORE_INDEX))
        attention = (input_ids != 0).long()
        losses[view] = model(input_ids=input_ids, attention_mask=attention, labels=label_ids).loss
        tokens += int(attention.sum()) + int((label_ids != IGNORE_INDEX).sum())
    return losses, tokens


def _baseline_rows(features: Any, view: str) -> tuple[Any, Any]:
    """Per example: (input, labels) padded to the longest row of its chunk of 1,000 rows."""
    import numpy as np

    from distillation.features import pad_rows
    from distillation.objectives import IGNORE_INDEX

    rows = features.views[view]
    present = [i for i, row in enumerate(rows.input_ids) if row is not None]
    inputs: dict[int, np.ndarray] = {}
    labels: dict[int, np.ndarray] = {}
    for start in range(0, len(present), CHUNK_ROWS):
        chunk = present[start : start + CHUNK_ROWS]
        padded_inputs = pad_rows([rows.input_ids[i] for i in chunk], 0)
        padded_labels = pad_rows([rows.targets[i] for i in chunk], IGNORE_INDEX)
        for offset, index in enumerate(chunk):
            inputs[index] = padded_inputs[offset]
            labels[index] = padded_labels[offset]
    return inputs, labels


def measure(
    work: Path, rows: int, method: str, path: str, batch: int, warmup: int, steps: int
) -> dict[str, Any]:
    """One measurement in this (fresh) process: tokens per second, loss and peak memory."""
    import numpy as np
    import torch

    from distillation.features import BatchCollator, batches_length_grouped
    from distillation.objectives import (
        IGNORE_INDEX,
        ObjectiveWeights,
        objective_loss,
        view_weights,
        weighted_view_loss,
    )

    tokenizer, _examples, _teacher, features = _setup(work, rows, method)
    model = _model(tokenizer).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    weights = ObjectiveWeights()
    per_view = view_weights(method, weights)
    views = list(per_view)
    indices = features.usable_indices()
    torch.manual_seed(1)

    if path == "fast":
        collator = BatchCollator(features, pad_token_id=0, decoder_start_token_id=0, views=views)
        view_weight = torch.tensor([per_view[view] for view in views])
        order = batches_length_grouped(
            indices, features.lengths(), batch_size=batch, seed=0, epoch=0
        )

        def step(number: int) -> tuple[float, int]:
            data = collator(order[number % len(order)].tolist())
            logits = model(
                input_ids=data["input_ids"],
                attention_mask=data["attention_mask"],
                decoder_input_ids=data["decoder_input_ids"],
            ).logits
            loss = weighted_view_loss(logits, data["labels"], data["view_ids"], view_weight)
            loss.backward()
            tokens = int(data["attention_mask"].sum()) + int((data["labels"] != IGNORE_INDEX).sum())
            return float(loss.detach()), tokens
    else:
        padded = {view: _baseline_rows(features, view) for view in views}
        rng = np.random.default_rng(0)
        shuffled = indices[rng.permutation(len(indices))]
        order = [shuffled[i : i + batch] for i in range(0, len(shuffled), batch)]

        def step(number: int) -> tuple[float, int]:
            losses, tokens = _separate_losses(model, padded, order[number % len(order)].tolist())
            loss = objective_loss(method, losses, weights)
            loss.backward()
            return float(loss.detach()), tokens

    for number in range(warmup):
        step(number)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    tokens = 0
    losses = []
    elapsed = 0.0
    for number in range(warmup, warmup + steps):
        started = time.perf_counter()
        loss, count = step(number)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        elapsed += time.perf_counter() - started
        tokens += count
        losses.append(loss)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "method": method,
        "path": path,
        "timed_steps": steps,
        "losses": losses,
        "tokens_per_second": tokens / elapsed,
        "seconds_per_step": elapsed / steps,
        "mean_loss": float(np.mean(losses)),
        "peak_rss_mib": peak_kib / 1024,
    }


def same_batch_losses(work: Path, rows: int, method: str, batch: int) -> dict[str, float]:
    """Both paths' loss on the same examples from the same weights, without dropout."""
    import torch

    from distillation.features import BatchCollator
    from distillation.objectives import (
        ObjectiveWeights,
        objective_loss,
        view_weights,
        weighted_view_loss,
    )

    tokenizer, _examples, _teacher, features = _setup(work, rows, method)
    model = _model(tokenizer).eval()
    per_view = view_weights(method, ObjectiveWeights())
    views = list(per_view)
    chosen = features.usable_indices()[:batch].tolist()
    with torch.no_grad():
        collator = BatchCollator(features, pad_token_id=0, decoder_start_token_id=0, views=views)
        data = collator(chosen)
        logits = model(
            input_ids=data["input_ids"],
            attention_mask=data["attention_mask"],
            decoder_input_ids=data["decoder_input_ids"],
        ).logits
        fast = weighted_view_loss(
            logits, data["labels"], data["view_ids"], torch.tensor([per_view[v] for v in views])
        )
        padded = {view: _baseline_rows(features, view) for view in views}
        losses, _tokens = _separate_losses(model, padded, chosen)
        baseline = objective_loss(method, losses, ObjectiveWeights())
    return {"fast": float(fast), "baseline": float(baseline)}


def _child(queue: Any, function: Any, *args: Any) -> None:
    queue.put(function(*args))


def in_fresh_process(function: Any, *args: Any) -> Any:
    """Run ``function`` in a new process so its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(queue, function, *args))
    process.start()
    result = queue.get()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"measurement process failed with exit code {process.exitcode}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="cqa-train shards folder")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument(
        "--baseline-steps",
        type=int,
        default=None,
        help="timed steps of the separate-pass baseline (default: --steps); its batches all "
        "have their chunk's padded shape, so fewer steps time it as well",
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = parser.parse_args()
    if not args.data.is_dir():
        print(
            f"teacher data {args.data} is absent; this benchmark needs ../shared/data",
            file=sys.stderr,
        )
        return 2
    os.environ["BENCH_DATA"] = str(args.data)
    import torch

    results: dict[str, Any] = {
        "setting": {
            "rows": args.rows,
            "batch_size": args.batch_size,
            "warmup_steps": args.warmup,
            "timed_steps": args.steps,
            "baseline_timed_steps": args.baseline_steps or args.steps,
            "model": MODEL,
            "dtype": "float32",
            "device": "cpu",
            "torch_threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
        }
    }
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        prepared = prepare(args.data, args.rows, args.vocab_size, work)
        results["setting"]["vocab"] = prepared["vocab"]
        print(
            f"prepared {args.rows} rows and a {prepared['vocab']}-piece tokenizer in {prepared['seconds']:.0f}s"
        )
        for method in args.methods:
            check = in_fresh_process(same_batch_losses, work, args.rows, method, args.batch_size)
            figures = {"same_batch_loss": check}
            for path in ("fast", "baseline"):
                steps = args.steps if path == "fast" else (args.baseline_steps or args.steps)
                measured = in_fresh_process(
                    measure, work, args.rows, method, path, args.batch_size, args.warmup, steps
                )
                figures[path] = measured
                print(
                    f"{method:6} {path:8} {measured['tokens_per_second']:9.0f} tokens/s  "
                    f"{measured['seconds_per_step']:.3f} s/step  mean loss {measured['mean_loss']:.4f}  "
                    f"peak {measured['peak_rss_mib']:.0f} MiB"
                )
            common = min(figures["fast"]["timed_steps"], figures["baseline"]["timed_steps"])
            figures["mean_loss_common_steps"] = {
                path: sum(figures[path]["losses"][:common]) / common
                for path in ("fast", "baseline")
            }
            for path in ("fast", "baseline"):
                figures[path].pop("losses")
            figures["speedup"] = (
                figures["fast"]["tokens_per_second"] / figures["baseline"]["tokens_per_second"]
            )
            figures["same_batch_relative_difference"] = abs(
                check["fast"] - check["baseline"]
            ) / abs(check["baseline"])
            print(
                f"{method:6} speed-up {figures['speedup']:.2f}x; same-batch loss fast {check['fast']:.5f} "
                f"vs baseline {check['baseline']:.5f}; mean loss over the first {common} timed "
                f"steps fast {figures['mean_loss_common_steps']['fast']:.4f} vs baseline "
                f"{figures['mean_loss_common_steps']['baseline']:.4f}"
            )
            results[method] = figures
    target = results.get("mt+cf", {}).get("speedup")
    results["target"] = {
        "mt+cf_speedup_at_least": 1.5,
        "met": None if target is None else target >= 1.5,
    }
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
