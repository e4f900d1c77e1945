from __future__ import annotations

import pytest

from distillation.postprocess import EMPTY, OK, TRUNCATED, UNPARSEABLE, output_clean

STOP = ("\n\n", "\nQuestion:")


def test_it_keeps_only_the_first_line_as_the_authors_did() -> None:
    cleaned = output_clean(
        " Milk spoils  when warm.\nA fridge keeps it cold.\n\nSecond paragraph.", hit_limit=False
    )

    assert (cleaned.text, cleaned.status) == ("Milk spoils when warm.", OK)


def test_a_limit_hit_after_the_first_line_is_not_truncation() -> None:
    cleaned = output_clean("Milk spoils when warm.\nMore text that was cut", hit_limit=True)

    assert (cleaned.text, cleaned.status) == ("Milk spoils when warm.", OK)


@pytest.mark.parametrize(
    "raw",
    [
        "The answer is refrigerator. Milk needs the cold.",
        "the correct answer is (b) refrigerator. Milk needs the cold.",
        'Answer: "refrigerator". Milk needs the cold.',
    ],
)
def test_it_strips_a_leading_answer_statement(raw: str) -> None:
    assert output_clean(raw, hit_limit=False).text == "Milk needs the cold."


def test_an_answer_with_its_reason_in_one_sentence_is_kept_whole() -> None:
    raw = "The answer is war because terrorism can lead to war."

    assert output_clean(raw, hit_limit=False).text == raw


def test_it_cuts_at_the_first_stop_sequence() -> None:
    cleaned = output_clean("It is cold there.\nQuestion: What next?", stop=STOP, hit_limit=False)

    assert cleaned.text == "It is cold there."


def test_an_output_cut_at_the_limit_drops_its_unfinished_sentence() -> None:
    cleaned = output_clean("Milk spoils when warm. A fridge keeps it", hit_limit=True)

    assert cleaned.status == TRUNCATED
    assert cleaned.text == "Milk spoils when warm."
    assert "generation limit" in cleaned.reason


def test_an_output_cut_in_its_first_sentence_keeps_the_fragment_and_says_so() -> None:
    cleaned = output_clean("Milk spoils when", hit_limit=True)

    assert (cleaned.text, cleaned.status) == ("Milk spoils when", TRUNCATED)
    assert "inside its first sentence" in cleaned.reason


def test_a_limit_hit_after_the_first_paragraph_is_not_truncation() -> None:
    cleaned = output_clean("Milk spoils when warm.\n\nMore text that was cut", hit_limit=True)

    assert (cleaned.text, cleaned.status) == ("Milk spoils when warm.", OK)


def test_without_a_finish_reason_an_unfinished_sentence_counts_as_truncated() -> None:
    assert output_clean("Milk spoils when warm", hit_limit=None).status == TRUNCATED
    assert output_clean('He said "go."', hit_limit=None).status == OK


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (None, EMPTY),
        ("   \n ", EMPTY),
        ("\nQuestion: another one", UNPARSEABLE),
        ("The answer is refrigerator.", UNPARSEABLE),
        ("```", UNPARSEABLE),
    ],
)
def test_failures_have_a_status_a_reason_and_no_text(raw: str | None, status: str) -> None:
    cleaned = output_clean(raw, stop=STOP, hit_limit=False)

    assert cleaned.status == status
    assert cleaned.text is None
    assert cleaned.reason
