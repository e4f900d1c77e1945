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
same batch from the same weights, and the mean loss of each path over their common timed steps
is printed. The last line is one JSON object with all figures; the exit status is 1 when MT+CF
misses the target of 1.5 times the baseline's tokens per second.

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


def _stepper(features: Any, method: str, path: str, batch: int, tokenizer: Any) -> Any:
    """A fresh model and optimizer (same seed for both paths) and its training step."""
    import numpy as np
    import torch

    from distillation.features import BatchCollator, batches_length_grouped
    from distillation.objectives import IGNORE_INDEX, ObjectiveWeights, objective_loss, view_weights
    from distillation.training import passes_loss

    model = _model(tokenizer).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    weights = ObjectiveWeights()
    per_view = view_weights(method, weights)
    views = list(per_view)
    indices = features.usable_indices()
    if path == "fast":
        collator = BatchCollator(features, pad_token_id=0, decoder_start_token_id=0, views=views)
        view_weight = torch.tensor([per_view[view] for view in views])
        order = batches_length_grouped(
            indices, features.lengths(), batch_size=batch, seed=0, epoch=0
        )

        def forward(number: int) -> tuple[Any, int]:
            passes = collator.passes(order[number % len(order)].tolist())
            tokens = sum(
                int(part["attention_mask"].sum()) + int((part["labels"] != IGNORE_INDEX).sum())
                for part in passes
            )
            return passes_loss(model, passes, view_weight, device="cpu"), tokens

    else:
        padded = {view: _baseline_rows(features, view) for view in views}
        rng = np.random.default_rng(0)
        shuffled = indices[rng.permutation(len(indices))]
        baseline_order = [shuffled[i : i + batch] for i in range(0, len(shuffled), batch)]

        def forward(number: int) -> tuple[Any, int]:
            examples = baseline_order[number % len(baseline_order)].tolist()
            losses, tokens = _separate_losses(model, padded, examples)
            return objective_loss(method, losses, weights), tokens

    def step(number: int) -> tuple[float, int]:
        loss, tokens = forward(number)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach()), tokens

    return step


def measure(
    work: Path,
    rows: int,
    method: str,
    paths: tuple[str, ...],
    batch: int,
    warmup: int,
    steps: int,
) -> dict[str, Any]:
    """Time ``paths`` in this (fresh) process, alternating their steps.

    Alternating step by step gives every path the same share of whatever else the machine is
    doing, so their ratio holds on a shared CPU. The peak resident memory is the process's.
    """
    import numpy as np
    import torch

    tokenizer, _examples, _teacher, features = _setup(work, rows, method)
    steppers = {}
    for path in paths:
        torch.manual_seed(1)  # the same dropout stream for every path
        steppers[path] = _stepper(features, method, path, batch, tokenizer)
    totals = {path: {"tokens": 0, "seconds": 0.0, "losses": []} for path in paths}
    for number in range(warmup + steps):
        for path, step in steppers.items():
            started = time.perf_counter()
            loss, tokens = step(number)
            seconds = time.perf_counter() - started
            if number >= warmup:
                totals[path]["tokens"] += tokens
                totals[path]["seconds"] += seconds
                totals[path]["losses"].append(loss)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        path: {
            "method": method,
            "path": path,
            "timed_steps": steps,
            "losses": total["losses"],
            "tokens_per_second": total["tokens"] / total["seconds"],
            "seconds_per_step": total["seconds"] / steps,
            "mean_loss": float(np.mean(total["losses"])),
            "process_peak_rss_mib": peak_kib / 1024,
        }
        for path, total in totals.items()
    }


def same_batch_losses(work: Path, rows: int, method: str, batch: int) -> dict[str, float]:
    """Both paths' loss on the same examples from the same weights, without dropout."""
    import torch

    from distillation.features import BatchCollator
    from distillation.objectives import ObjectiveWeights, objective_loss, view_weights
    from distillation.training import passes_loss

    tokenizer, _examples, _teacher, features = _setup(work, rows, method)
    model = _model(tokenizer).eval()
    per_view = view_weights(method, ObjectiveWeights())
    views = list(per_view)
    chosen = features.usable_indices()[:batch].tolist()
    with torch.no_grad():
        collator = BatchCollator(features, pad_token_id=0, decoder_start_token_id=0, views=views)
        fast = passes_loss(
            model,
            collator.passes(chosen),
            torch.tensor([per_view[v] for v in views]),
            device="cpu",
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
        "--peak-steps",
        type=int,
        default=10,
        help="steps after the warm-up of the separate runs that measure each path's peak memory",
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
            "peak_memory_steps": args.peak_steps,
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
            timed = in_fresh_process(
                measure,
                work,
                args.rows,
                method,
                ("fast", "baseline"),
                args.batch_size,
                args.warmup,
                args.steps,
            )
            for path in ("fast", "baseline"):
                # Peak memory of each path alone, in a process of its own.
                alone = in_fresh_process(
                    measure,
                    work,
                    args.rows,
                    method,
                    (path,),
                    args.batch_size,
                    args.warmup,
                    args.peak_steps,
                )[path]
                measured = timed[path]
                measured["peak_rss_mib"] = alone["process_peak_rss_mib"]
                del measured["process_peak_rss_mib"]
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
    return 1 if results["target"]["met"] is False else 0


if __name__ == "__main__":
    sys.exit(main())
