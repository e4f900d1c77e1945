"""Student models: a tiny T5 built from a config, or any Hugging Face seq2seq model.

The tiny T5 follows T5-v1.1 (gated-GELU feed-forward, decoder outputs not rescaled; transformers
5 always shares the input and output embedding matrix) and gets a SentencePiece-style Unigram
tokenizer trained on the run's own text, so tests and the demo need no download.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from distillation.errors import ConfigError

TINY_T5 = "tiny-t5"
PAD, EOS, UNK = "<pad>", "</s>", "<unk>"


@dataclass(frozen=True)
class TinyT5Config:
    """Architecture of the tiny T5 students (T5-v1.1 names)."""

    d_model: int = 64
    d_ff: int = 128
    num_layers: int = 2  # encoder layers; the decoder gets as many
    num_heads: int = 4
    d_kv: int = 16
    vocab_size: int = 2000  # Unigram pieces to train (the trainer may stop below it)
    dropout_rate: float = 0.1

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if name == "dropout_rate":
                if not 0.0 <= value < 1.0:
                    raise ConfigError(
                        f"training.tiny_t5.dropout_rate must be in [0, 1), got {value}"
                    )
            elif not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"training.tiny_t5.{name} must be a positive integer, got {value!r}"
                )
        if self.vocab_size < 100:
            raise ConfigError(
                f"training.tiny_t5.vocab_size must be at least 100, got {self.vocab_size}"
            )


def tokenizer_train(texts: Iterable[str], *, vocab_size: int) -> Any:
    """A Unigram tokenizer trained on ``texts``, wrapped as a ``PreTrainedTokenizerFast``.

    Pad, end-of-sequence and unknown take ids 0, 1 and 2 as in T5, so a tiny T5 uses the pad
    id as its decoder start token like the real ones.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS, UNK],
        unk_token=UNK,
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=PAD, eos_token=EOS, unk_token=UNK
    )


def tiny_t5_build(tokenizer: Any, config: TinyT5Config, *, seed: int) -> Any:
    """A randomly initialised T5-v1.1-style model sized by ``config``; ``seed`` fixes the weights."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    settings: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "d_model": config.d_model,
        "d_ff": config.d_ff,
        "d_kv": config.d_kv,
        "num_layers": config.num_layers,
        "num_decoder_layers": config.num_layers,
        "num_heads": config.num_heads,
        "dropout_rate": config.dropout_rate,
        "feed_forward_proj": "gated-gelu",
        "tie_word_embeddings": False,  # transformers 5 reads this as v1.1: no output rescaling
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": tokenizer.pad_token_id,
    }
    model_config = T5Config(**settings)
    # Seed for the weights, then put the global generator back, so that building a model does
    # not shift the random stream that the training loop then draws from.
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = T5ForConditionalGeneration(model_config)
        # T5-v1.1 draws the (shared) embedding matrix with std 1 and does not rescale the
        # decoder output, which puts the first logits in the tens and the first loss far above
        # log(vocab); a model trained for a few hundred steps spends most of them undoing that,
        # so start it near uniform predictions. Every block normalises its input first, so the
        # smaller input embeddings change nothing else.
        with torch.no_grad():
            model.shared.weight.normal_(0.0, config.d_model**-0.5)
    finally:
        torch.random.set_rng_state(generator_state)
    _generation_defaults(model, tokenizer)
    return model


def pretrained_load(name_or_path: str) -> tuple[Any, Any]:
    """Any Hugging Face seq2seq model and its tokenizer, by hub name or local folder."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        model = AutoModelForSeq2SeqLM.from_pretrained(name_or_path)
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"student model {name_or_path!r} could not be loaded as a Hugging Face seq2seq "
            f"model ({error}); give a local folder or a hub name that is cached or reachable, "
            f"or {TINY_T5!r} for a small model built from [training.tiny_t5]"
        ) from None
    if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
        raise ConfigError(f"student model {name_or_path!r} has no pad or end-of-sequence token")
    _generation_defaults(model, tokenizer)
    return model, tokenizer


def _generation_defaults(model: Any, tokenizer: Any) -> None:
    generation = model.generation_config
    generation.pad_token_id = tokenizer.pad_token_id
    generation.eos_token_id = tokenizer.eos_token_id
    if generation.decoder_start_token_id is None:
        generation.decoder_start_token_id = model.config.decoder_start_token_id


def decoder_start_token_id(model: Any) -> int:
    start = model.config.decoder_start_token_id
    if start is None:
        raise ConfigError(f"model {model.config.name_or_path!r} has no decoder_start_token_id")
    return int(start)


def student_save(model: Any, tokenizer: Any, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def student_load(directory: Path) -> tuple[Any, Any]:
    """A student written by ``student_save`` (tiny or pretrained alike)."""
    return pretrained_load(str(directory))
