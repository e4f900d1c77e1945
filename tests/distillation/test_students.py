from __future__ import annotations

import pytest
import torch

from distillation.errors import ConfigError
from distillation.students import (
    TinyT5Config,
    pretrained_load,
    student_load,
    student_save,
    tokenizer_train,
)
from tests.distillation.students_support import (
    examples_make,
    model_make,
    teacher_make,
    tokenizer_make,
)


@pytest.fixture(scope="module")
def tokenizer():
    examples = examples_make(6)
    return tokenizer_make(examples, teacher_make(examples))


def test_the_trained_tokenizer_uses_t5_special_ids_and_round_trips_text(tokenizer):
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    ids = tokenizer("Where do fish live?", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == "Where do fish live?"


def test_the_tokenizer_vocabulary_is_bounded_by_the_requested_size():
    tokenizer = tokenizer_train(["a b c d e f g h " * 20, "the quick brown fox"], vocab_size=120)
    assert len(tokenizer) <= 120


def test_a_tiny_t5_is_fixed_by_its_seed_and_leaves_the_global_generator_alone(tokenizer):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = model_make(tokenizer, seed=5)
    after = torch.rand(1)
    second = model_make(tokenizer, seed=5)
    third = model_make(tokenizer, seed=6)
    assert before == after
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(first.lm_head.weight, third.lm_head.weight)
    assert first.config.feed_forward_proj == "gated-gelu"
    assert first.config.scale_decoder_outputs is False  # v1.1: no output rescaling


def test_a_tiny_t5_shares_one_embedding_matrix_and_does_not_rescale_its_output(tokenizer):
    # What the transformers range in pyproject.toml is chosen for.
    model = model_make(tokenizer, dropout=0.0).eval()
    shared = model.shared.weight
    for layer in (model.lm_head, model.encoder.embed_tokens, model.decoder.embed_tokens):
        assert layer.weight.data_ptr() == shared.data_ptr()
    ids = torch.tensor([tokenizer("Where do fish live?")["input_ids"]])
    with torch.no_grad():
        output = model(input_ids=ids, labels=ids, output_hidden_states=True)
    last_hidden = output.decoder_hidden_states[-1]
    assert torch.allclose(output.logits, last_hidden @ shared.T, atol=1e-5)


def test_the_untrained_model_starts_near_uniform_predictions(tokenizer):
    model = model_make(tokenizer, dropout=0.0).eval()
    ids = torch.tensor([tokenizer("Where do fish live?")["input_ids"]])
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss.item()
    uniform = torch.log(torch.tensor(float(len(tokenizer)))).item()
    assert abs(loss - uniform) < 1.0


def test_a_saved_student_loads_back_with_identical_outputs(tmp_path, tokenizer):
    model = model_make(tokenizer, dropout=0.0).eval()
    student_save(model, tokenizer, tmp_path / "best")
    loaded, loaded_tokenizer = student_load(tmp_path / "best")
    ids = torch.tensor([tokenizer("What do you wear?")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(
            model(input_ids=ids, labels=ids).logits,
            loaded.eval()(input_ids=ids, labels=ids).logits,
        )
    assert loaded_tokenizer.get_vocab() == tokenizer.get_vocab()


def test_a_model_that_cannot_be_loaded_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="could not be loaded"):
        pretrained_load(str(tmp_path / "no-such-model"))


def test_a_bad_tiny_architecture_names_the_key():
    with pytest.raises(ConfigError, match=r"training\.tiny_t5\.d_model"):
        TinyT5Config(d_model=0)
    with pytest.raises(ConfigError, match=r"training\.tiny_t5\.vocab_size"):
        TinyT5Config(vocab_size=10)
