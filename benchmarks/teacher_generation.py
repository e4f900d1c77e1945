"""Teacher generation throughput: batched, left-padded generation against one prompt at a time.

The same tiny random-weight causal LM (a tokenizer trained on the questions, so prompts have a
realistic length), the same explain prompts (the project's few-shot template filled with
CommonsenseQA questions) and the same greedy decoding run twice through the ``hf`` backend:
once with ``batch_size`` prompts per forward pass and once with one. Prints tokens per second
for both, the ratio, whether both produced the same text, and as the last line one JSON object
with the figures. Target: batched at least 4x faster on CPU.

Questions come from ``../shared/data/cqa/train.jsonl`` when present, else from the bundled
demo questions. Run from the project root::

    .venv/bin/python benchmarks/teacher_generation.py [--prompts 32] [--batch-size 16]
        [--max-new-tokens 64] [--model llama|gpt2] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from distillation.data import examples_load  # noqa: E402
from distillation.prompts import prompts_load  # noqa: E402
from distillation.teachers import GenerationRequest, GenerationResult  # noqa: E402
from distillation.teachers.hf import HFTeacher  # noqa: E402
from distillation.teachers.tiny import tiny_causal_lm_build, tiny_tokenizer_train  # noqa: E402

TARGET_SPEEDUP = 4.0
SHARED_QUESTIONS = ROOT.parent / "shared" / "data" / "cqa" / "train.jsonl"
DEMO_QUESTIONS = ROOT / "distillation" / "demo_data" / "questions.jsonl"


def timed_generate(
    teacher: HFTeacher, requests: list[GenerationRequest], repeats: int
) -> tuple[list[GenerationResult], float]:
    """The results and the best wall time of ``repeats`` runs (other load only adds time)."""
    best = float("inf")
    results: list[GenerationResult] = []
    for _ in range(repeats):
        start = time.perf_counter()
        results = teacher.generate(requests)
        best = min(best, time.perf_counter() - start)
    return results, best


def benchmark_run(
    *,
    prompts: int,
    batch_size: int,
    max_new_tokens: int,
    model_kind: str,
    seed: int,
    repeats: int,
) -> dict[str, Any]:
    source = SHARED_QUESTIONS if SHARED_QUESTIONS.is_file() else DEMO_QUESTIONS
    examples = examples_load(source, limit=max(prompts, 200))
    template = prompts_load()
    corpus = [template.explain(example) for example in examples]
    tokenizer = tiny_tokenizer_train(corpus, vocab_size=2000)
    model = tiny_causal_lm_build(tokenizer, kind=model_kind, hidden_size=64, layers=2, seed=seed)
    # No stop sequences: both runs must generate the same number of tokens to be comparable.
    requests = [GenerationRequest(text, max_new_tokens) for text in corpus[:prompts]]
    prompt_tokens = [len(tokenizer(text)["input_ids"]) for text in corpus[:prompts]]

    batched = HFTeacher(model, tokenizer, name="tiny", batch_size=batch_size)
    single = HFTeacher(model, tokenizer, name="tiny", batch_size=1)
    batched.generate(requests[:2])  # warm-up: first-call allocations are not throughput
    batched_results, batched_s = timed_generate(batched, requests, repeats)
    single_results, single_s = timed_generate(single, requests, repeats)

    batched_tokens = sum(result.new_tokens for result in batched_results)
    single_tokens = sum(result.new_tokens for result in single_results)
    batched_rate = batched_tokens / batched_s
    single_rate = single_tokens / single_s
    speedup = batched_rate / single_rate
    return {
        "benchmark": "teacher_generation",
        "questions": str(source.relative_to(ROOT.parent)),
        "model": f"tiny-{model_kind}",
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "prompts": prompts,
        "mean_prompt_tokens": round(sum(prompt_tokens) / len(prompt_tokens), 1),
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "batched_seconds": round(batched_s, 3),
        "single_seconds": round(single_s, 3),
        "batched_tokens_per_s": round(batched_rate, 1),
        "single_tokens_per_s": round(single_rate, 1),
        "speedup": round(speedup, 2),
        "target_speedup": TARGET_SPEEDUP,
        "meets_target": speedup >= TARGET_SPEEDUP,
        "same_outputs": [r.text for r in batched_results] == [r.text for r in single_results],
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    # Explanations run to 60-100 tokens; 64 is a typical explain budget.
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--model", choices=("llama", "gpt2"), default="llama")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for both runs (1: on a shared CPU more threads only spin)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per mode; best kept")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if min(args.prompts, args.batch_size, args.max_new_tokens, args.threads, args.repeats) < 1:
        parser.error("--prompts, --batch-size, --max-new-tokens, --threads, --repeats: positive")
    torch.set_num_threads(args.threads)
    figures = benchmark_run(
        prompts=args.prompts,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        model_kind=args.model,
        seed=args.seed,
        repeats=args.repeats,
    )
    print(
        f"{figures['prompts']} explain prompts ({figures['mean_prompt_tokens']} tokens on "
        f"average), {figures['max_new_tokens']} new tokens each, {figures['model']} "
        f"({figures['parameters']:,} parameters), {figures['threads']} thread(s), "
        f"best of {figures['repeats']} runs"
    )
    print(
        f"batched (batch size {figures['batch_size']}): "
        f"{figures['batched_tokens_per_s']:.1f} tokens/s in {figures['batched_seconds']:.2f} s"
    )
    print(
        f"one at a time: {figures['single_tokens_per_s']:.1f} tokens/s "
        f"in {figures['single_seconds']:.2f} s"
    )
    verdict = "meets" if figures["meets_target"] else "MISSES"
    print(f"speedup {figures['speedup']:.2f}x ({verdict} the {TARGET_SPEEDUP:.0f}x target)")
    print(f"same outputs both ways: {figures['same_outputs']}")
    print(json.dumps(figures))
    return 0 if figures["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
