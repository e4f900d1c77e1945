"""GPU smoke test: the paper recipe's student training and the ``hf`` teacher, on one CUDA device.

Two measurements, nothing downloaded:

* **Training.** The paper recipe's student architecture, T5-v1.1-base (d_model 768, d_ff 2048,
  12 + 12 layers, 12 heads, gated GELU), built from its configuration with random weights and a
  Unigram tokenizer of 32,000 pieces trained on the spot, trains with MT+CF on the real teacher
  outputs (``../shared/data/teacher/llama2-13b/cqa-train``, revised explanations) through the
  project's own training loop (``student_train``): the ``[training]`` table of
  ``configs/paper-cqa.toml`` (batch 64 as per-device passes plus accumulation, inputs and
  targets of 300 tokens, equal view weights, the gold-answer factual view) in bf16. After
  ``--warmup-steps`` steps it times ``--steps`` more and reports non-padding tokens per second
  (input tokens plus label tokens), examples per second and the peak GPU memory.
* **Teacher generation.** The ``hf`` teacher backend generates ``--max-new-tokens`` tokens for
  ``--prompts`` explain prompts (the project's few-shot template on CommonsenseQA questions)
  with a random-weight LLaMA-shaped model (``--teacher-shape 13b``: LLaMA-2-13B's shape, bf16)
  and a WordPiece tokenizer of 32,000 pieces trained on the prompts. A random model never ends
  early, so every prompt generates the full budget.

Without a CUDA device it says so and exits 0. ``--allow-cpu --tiny`` runs the same code path
with a tiny T5, a tiny teacher and a few steps on a CPU, to check the script before GPU time is
spent on it. Prints its figures and, as the last line, one JSON object with them.

Run from the project root::

    .venv/bin/python benchmarks/gpu_smoke.py [--steps 200] [--warmup-steps 10]
        [--per-device-batch-size N] [--teacher-shape 13b|7b|tiny] [--allow-cpu --tiny]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEACHER_DATA = ROOT.parent / "shared" / "data" / "teacher" / "llama2-13b" / "cqa-train"
PAPER_CONFIG = ROOT / "configs" / "paper-cqa.toml"
# T5-v1.1-base in the names of the project's T5 builder.
T5_V1_1_BASE = {"d_model": 768, "d_ff": 2048, "num_layers": 12, "num_heads": 12, "d_kv": 64}
TINY_T5 = {"d_model": 32, "d_ff": 64, "num_layers": 1, "num_heads": 2, "d_kv": 16}
# LLaMA shapes: hidden size, feed-forward size, layers, attention heads.
TEACHER_SHAPES = {
    "13b": (5120, 13824, 40, 40),
    "7b": (4096, 11008, 32, 32),
    "tiny": (64, 128, 2, 4),
}
GIB = 2**30


def cuda_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


# -- training ------------------------------------------------------------------------------
def teacher_outputs(data: Path, rows: int | None, work: Path) -> tuple[list[Any], dict[str, Any]]:
    """The first ``rows`` questions of ``data`` and their imported teacher outputs."""
    from distillation.data import examples_load
    from distillation.importing import teacher_outputs_import
    from distillation.store import teacher_explanations_load

    examples = examples_load(data, format="hf", limit=rows)
    teacher_outputs_import(data, work / "teacher")
    return examples, teacher_explanations_load(work / "teacher")


class TokenCounter:
    """Counts the non-padding tokens of every training forward pass (a forward pre-hook)."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id
        self.tokens = 0

    def __call__(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        if not module.training:
            return
        inputs = int(kwargs["attention_mask"].sum())
        decoder = kwargs["decoder_input_ids"]
        # Each row's decoder input is its labels shifted right behind the start token (the pad
        # id in T5): its non-pad positions plus one give the label tokens.
        labels = int((decoder != self.pad_token_id).sum()) + decoder.shape[0]
        self.tokens += inputs + labels


class StepClock:
    """Stands in for validation: notes the time and tokens at every ``eval_every`` step."""

    def __init__(self, counter: TokenCounter, cuda: bool) -> None:
        self.counter = counter
        self.cuda = cuda
        self.marks: list[tuple[float, int]] = []

    def __call__(self, model: Any) -> dict[str, float]:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
        self.marks.append((time.perf_counter(), self.counter.tokens))
        return {"accuracy": 0.0, "loss": 0.0}


def train_measure(args: argparse.Namespace, work: Path, cuda: bool) -> dict[str, Any]:
    import torch

    from distillation.config import run_config_load
    from distillation.features import features_build, view_texts
    from distillation.students import TinyT5Config, tiny_t5_build, tokenizer_train
    from distillation.training import accelerator_create, student_train

    started = time.perf_counter()
    examples, teacher = teacher_outputs(args.data, args.rows, work)
    imported_s = time.perf_counter() - started
    paper = run_config_load(PAPER_CONFIG, base_dir=ROOT).training
    total = args.warmup_steps + args.steps
    training = replace(
        paper,
        steps=total,
        eval_every=args.warmup_steps,
        log_every=args.warmup_steps,
        checkpoint_every=total,
        mixed_precision="bf16" if cuda else "no",
        per_device_batch_size=args.per_device_batch_size or paper.per_device_batch_size,
    )
    split = training.batch_split(1)

    started = time.perf_counter()
    texts: list[str] = []
    for variant in ("original", "revised"):
        views, _ = view_texts(
            examples,
            teacher,
            method="mt+cf",
            data_variant=variant,
            seed=0,
            factual_explanation=training.factual_explanation,
        )
        for items in views.values():
            texts.extend(part for item in items if item for part in (item[0], item[1][0][0]))
    tokenizer = tokenizer_train(texts, vocab_size=args.vocab_size)
    tokenizer_s = time.perf_counter() - started

    shape = TINY_T5 if args.tiny else T5_V1_1_BASE
    model = tiny_t5_build(
        tokenizer, TinyT5Config(**shape, vocab_size=args.vocab_size, dropout_rate=0.1), seed=0
    )
    parameters = sum(parameter.numel() for parameter in model.parameters())
    started = time.perf_counter()
    features = features_build(
        examples,
        teacher,
        tokenizer=tokenizer,
        method="mt+cf",
        data_variant="revised",
        seed=0,
        max_input_length=training.max_input_length,
        max_target_length=training.max_target_length,
        factual_explanation=training.factual_explanation,
    )
    features_s = time.perf_counter() - started

    counter = TokenCounter(tokenizer.pad_token_id)
    model.register_forward_pre_hook(counter, with_kwargs=True)
    clock = StepClock(counter, cuda)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    result = student_train(
        model=model,
        tokenizer=tokenizer,
        features=features,
        method="mt+cf",
        training=training,
        seed=0,
        output_dir=work / "student",
        validate=clock,
        accelerator=accelerator_create(training),
    )
    (start, start_tokens), (end, end_tokens) = clock.marks[0], clock.marks[-1]
    seconds = end - start
    losses = [
        json.loads(line)["loss"]
        for line in (work / "student" / "metrics.jsonl").read_text().splitlines()
        if '"loss"' in line
    ]
    figures = {
        "model": "t5-v1_1-base shape, random weights" if not args.tiny else "tiny t5",
        "parameters": parameters,
        "vocab_size": len(tokenizer),
        "examples": len(features.usable_indices()),
        "batch": split.line(),
        "mixed_precision": training.mixed_precision,
        "timed_steps": args.steps,
        "seconds": round(seconds, 2),
        "seconds_per_step": round(seconds / args.steps, 3),
        "tokens_per_s": round((end_tokens - start_tokens) / seconds, 1),
        "examples_per_s": round(args.steps * training.batch_size / seconds, 1),
        "loss_first": round(losses[0], 4),
        "loss_last": round(result.final_loss, 4),
        "import_s": round(imported_s, 1),
        "tokenizer_s": round(tokenizer_s, 1),
        "features_s": round(features_s, 1),
    }
    if cuda:
        figures["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 2)
        figures["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / GIB, 2)
    return figures


# -- teacher generation --------------------------------------------------------------------
def teacher_model_build(tokenizer: Any, shape: str, cuda: bool) -> Any:
    """A random-weight ``LlamaForCausalLM`` of ``shape``, built in place (bf16 on a GPU)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, intermediate, layers, heads = TEACHER_SHAPES[shape]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    dtype = torch.bfloat16 if cuda else torch.float32
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("cuda" if cuda else "cpu"):
            return LlamaForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(previous)


def teacher_measure(args: argparse.Namespace, cuda: bool) -> dict[str, Any]:
    import torch

    from distillation.data import examples_load
    from distillation.prompts import prompts_load
    from distillation.teachers import GenerationRequest
    from distillation.teachers.hf import HFTeacher
    from distillation.teachers.tiny import tiny_tokenizer_train

    examples = examples_load(args.data, format="hf", limit=max(args.prompts, 200))
    templates = prompts_load()
    corpus = [templates.explain(example) for example in examples]
    tokenizer = tiny_tokenizer_train(corpus, vocab_size=args.teacher_vocab_size)
    model = teacher_model_build(tokenizer, args.teacher_shape, cuda)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    teacher = HFTeacher(model, tokenizer, name="random-llama", batch_size=args.teacher_batch_size)
    requests = [GenerationRequest(text, args.max_new_tokens) for text in corpus[: args.prompts]]
    prompt_tokens = [len(tokenizer(text)["input_ids"]) for text in corpus[: args.prompts]]
    teacher.generate(requests[:2])  # warm-up: first-call allocations are not throughput
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    results = teacher.generate(requests)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    new_tokens = sum(result.new_tokens for result in results)
    figures = {
        "model": f"llama {args.teacher_shape} shape, random weights",
        "parameters": parameters,
        "prompts": len(requests),
        "mean_prompt_tokens": round(sum(prompt_tokens) / len(prompt_tokens), 1),
        "batch_size": args.teacher_batch_size,
        "max_new_tokens": args.max_new_tokens,
        "new_tokens": new_tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(new_tokens / seconds, 1),
        "hit_limit": sum(result.hit_limit for result in results),
    }
    if cuda:
        figures["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 2)
    return figures


# -- command line --------------------------------------------------------------------------
def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=200, help="timed training steps")
    parser.add_argument("--warmup-steps", type=int, default=10, help="untimed steps first")
    parser.add_argument(
        "--per-device-batch-size",
        type=int,
        default=None,
        help="examples per pass (default: configs/paper-cqa.toml's); the batch stays 64",
    )
    parser.add_argument("--rows", type=int, default=None, help="training questions (all)")
    parser.add_argument("--vocab-size", type=int, default=32000, help="student tokenizer")
    parser.add_argument("--teacher-shape", choices=tuple(TEACHER_SHAPES), default="13b")
    parser.add_argument("--teacher-vocab-size", type=int, default=32000)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--teacher-batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--data", type=Path, default=TEACHER_DATA, help="teacher shards")
    parser.add_argument("--allow-cpu", action="store_true", help="run on a CPU (with --tiny)")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="tiny student and teacher, 200 questions, 2 + 2 steps: a check of the code path",
    )
    args = parser.parse_args(argv)
    if args.tiny:
        tiny = {"rows": 200, "vocab_size": 800, "teacher_vocab_size": 400, "prompts": 8}
        for name, value in tiny.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
        args.teacher_shape = "tiny"
        args.steps = min(args.steps, 2)
        args.warmup_steps = min(args.warmup_steps, 2)
        args.max_new_tokens = min(args.max_new_tokens, 16)
    positive = ("steps", "warmup_steps", "vocab_size", "prompts", "teacher_batch_size")
    if min(getattr(args, name) for name in positive) < 1:
        parser.error(
            "--steps, --warmup-steps, --vocab-size, --prompts, --teacher-batch-size: positive"
        )
    if args.steps % args.warmup_steps:
        parser.error("--steps must be a multiple of --warmup-steps (the clock ticks every warm-up)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    device = cuda_name()
    if device is None and not args.allow_cpu:
        print("No CUDA device: the GPU smoke test needs one, so nothing was run.")
        print(json.dumps({"benchmark": "gpu_smoke", "cuda": False, "ran": False}))
        return 0
    if not args.data.is_dir():
        print(f"The teacher outputs are not at {args.data}; give --data.")
        return 1
    import torch
    import transformers

    cuda = device is not None
    with tempfile.TemporaryDirectory() as temporary:
        train = train_measure(args, Path(temporary), cuda)
    if cuda:
        torch.cuda.empty_cache()
    teacher = teacher_measure(args, cuda)
    print(f"device: {device or 'CPU'}")
    print(
        f"training: {train['model']} ({train['parameters']:,} parameters), MT+CF on "
        f"{train['examples']} questions, {train['batch']}, {train['mixed_precision']}"
    )
    print(
        f"  {train['timed_steps']} steps in {train['seconds']} s ({train['seconds_per_step']} "
        f"s/step): {train['tokens_per_s']:,} tokens/s, {train['examples_per_s']} examples/s; "
        f"loss {train['loss_first']} -> {train['loss_last']}"
    )
    if cuda:
        print(
            f"  peak GPU memory {train['peak_allocated_gib']} GiB allocated, "
            f"{train['peak_reserved_gib']} GiB reserved"
        )
    print(
        f"teacher: {teacher['model']} ({teacher['parameters']:,} parameters), "
        f"{teacher['prompts']} prompts of {teacher['mean_prompt_tokens']} tokens, batch "
        f"{teacher['batch_size']}: {teacher['new_tokens']} new tokens in {teacher['seconds']} s "
        f"= {teacher['tokens_per_s']:,} tokens/s"
        + (f", peak {teacher['peak_allocated_gib']} GiB" if cuda else "")
    )
    figures = {
        "benchmark": "gpu_smoke",
        "cuda": cuda,
        "ran": True,
        "device": device or "cpu",
        "train": train,
        "teacher": teacher,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
