"""Tiny random-weight causal LMs with a tokenizer trained on the spot.

They stand in for a real teacher where none can be downloaded: in tests, in the generation
benchmark and in smoke runs on CPU. Their text is gibberish, but the code paths (tokenising,
left padding, batching, stopping, storing) are exactly those of a real model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

EOS = "<eos>"
PAD = "<pad>"
UNK = "<unk>"


def tiny_tokenizer_train(corpus: Iterable[str], *, vocab_size: int = 400) -> Any:
    """A WordPiece tokenizer trained on ``corpus``, wrapped for ``transformers``.

    WordPiece decodes to space-separated words, so even a random model's output reads as words
    and goes through the same cleaning as a real teacher's.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, EOS, UNK], show_progress=False
    )
    tokenizer.train_from_iterator(list(corpus), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=EOS, pad_token=PAD, unk_token=UNK
    )


def tiny_causal_lm_build(
    tokenizer: Any, *, kind: str = "llama", hidden_size: int = 32, layers: int = 2, seed: int = 0
) -> Any:
    """A randomly initialised ``LlamaForCausalLM`` or ``GPT2LMHeadModel`` sized for ``tokenizer``."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    vocab = len(tokenizer)
    common = {
        "vocab_size": vocab,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if kind == "llama":
        config = LlamaConfig(
            hidden_size=hidden_size,
            intermediate_size=hidden_size * 2,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=2048,
            **common,
        )
        return LlamaForCausalLM(config).eval()
    if kind == "gpt2":
        gpt2 = GPT2Config(n_embd=hidden_size, n_layer=layers, n_head=4, n_positions=2048, **common)
        return GPT2LMHeadModel(gpt2).eval()
    raise ValueError(f"unknown tiny model kind {kind!r}; accepted: llama, gpt2")


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch CPU threads, then restore the previous number.

    Tiny models gain nothing from threads, and on a shared CPU torch's worker threads spin
    against other processes and can slow generation down a hundredfold.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
