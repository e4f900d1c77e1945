"""The ``hf`` backend: a local causal language model loaded with ``from_pretrained``.

Prompts are generated in batches, left-padded (a decoder-only model continues from the last
position of every row, so the padding has to go on the left). Greedy decoding by default;
sampling is seeded at every call so that the same prompts give the same outputs. Requests that
carry a contrast prompt go through :func:`~distillation.teachers.contrastive.contrastive_generate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import StoppingCriteriaList

from distillation.teacher_config import TeacherConfig
from distillation.teachers import GenerationRequest, GenerationResult, TeacherError
from distillation.teachers.contrastive import contrastive_generate
from distillation.teachers.decoding import StopOnText, result_from_tokens

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class HFTeacher:
    """Generate with a loaded model and tokenizer; see :meth:`from_config` to load by name."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        batch_size: int = 8,
        do_sample: bool = False,
        temperature: float = 0.7,
        top_p: float = 0.95,
        seed: int = 0,
        contrastive_lambda: float = 0.5,
        contrastive_alpha: float = 0.1,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            # Causal LMs usually ship without a pad token; EOS is safe because the attention
            # mask hides the padding and decoding ends at the first EOS anyway.
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.name = name
        self.batch_size = batch_size
        self.do_sample = do_sample
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.contrastive_lambda = contrastive_lambda
        self.contrastive_alpha = contrastive_alpha

    @classmethod
    def from_config(cls, config: TeacherConfig) -> HFTeacher:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        on_gpu = torch.cuda.is_available()
        dtype = _DTYPES.get(config.dtype, torch.bfloat16 if on_gpu else torch.float32)
        try:
            tokenizer = AutoTokenizer.from_pretrained(config.model)
            model: Any = AutoModelForCausalLM.from_pretrained(
                config.model, dtype=dtype, device_map=config.device_map
            )
        except (OSError, ValueError) as error:
            raise TeacherError(f"cannot load teacher model {config.model!r}: {error}") from None
        if config.device_map is None and on_gpu:
            model = model.to("cuda")
        return cls(
            model,
            tokenizer,
            name=config.model,
            batch_size=config.batch_size,
            do_sample=config.do_sample,
            temperature=config.temperature,
            top_p=config.top_p,
            seed=config.seed,
            contrastive_lambda=config.contrastive_lambda,
            contrastive_alpha=config.contrastive_alpha,
        )

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in order; requests are batched by their decoding settings."""
        results: dict[int, GenerationResult] = {}
        groups: dict[tuple[int, tuple[str, ...], bool], list[int]] = {}
        for index, request in enumerate(requests):
            group = (request.max_new_tokens, request.stop, request.contrast_prompt is not None)
            groups.setdefault(group, []).append(index)
        for (max_new_tokens, stop, contrastive), indices in groups.items():
            # Prompts of similar length share a batch, so little compute goes into padding.
            indices.sort(key=lambda index: len(requests[index].prompt))
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                batch = [requests[index] for index in chunk]
                if contrastive:
                    outputs = contrastive_generate(
                        self.model,
                        self.tokenizer,
                        [request.prompt for request in batch],
                        [request.contrast_prompt or "" for request in batch],
                        max_new_tokens=max_new_tokens,
                        lam=self.contrastive_lambda,
                        alpha=self.contrastive_alpha,
                        stop=stop,
                    )
                else:
                    outputs = self._batch_generate(
                        [request.prompt for request in batch], max_new_tokens, stop
                    )
                for index, output in zip(chunk, outputs, strict=True):
                    results[index] = output
        return [results[index] for index in range(len(requests))]

    @torch.no_grad()
    def _batch_generate(
        self, prompts: list[str], max_new_tokens: int, stop: tuple[str, ...]
    ) -> list[GenerationResult]:
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.model.device)
        prompt_length = encoded["input_ids"].shape[1]
        options: dict[str, Any] = {"do_sample": self.do_sample}
        if self.do_sample:
            options.update(temperature=self.temperature, top_p=self.top_p)
            torch.manual_seed(self.seed)
        else:
            # Greedy: clear sampling defaults a model's generation config may carry.
            options.update(temperature=None, top_p=None, top_k=None)
        output = self.model.generate(
            **encoded,
            max_new_tokens=max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
            stopping_criteria=StoppingCriteriaList(
                [StopOnText(self.tokenizer, stop, prompt_length)]
            ),
            **options,
        )
        return [
            result_from_tokens(
                self.tokenizer,
                row[prompt_length:].tolist(),
                max_new_tokens=max_new_tokens,
                stop=stop,
            )
            for row in output
        ]
