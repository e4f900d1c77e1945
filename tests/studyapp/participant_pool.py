"""Shared builders for participant-flow tests: an item pool, a study, a scripted participant."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bs4 import BeautifulSoup
from django.test import Client
from django.urls import reverse

from studyapp.importing import explanations_read
from studyapp.models import Participant, Study
from studyapp.models import Questionnaire as QuestionnaireRow
from studyapp.participation.binding import Binding
from studyapp.participation.services import RecordOutcome, Submission, item_submit
from studyapp.studies.services import questionnaire_import, study_create_from_explanations
from studyformats.questionnaire import PLAIN_5, Questionnaire, questionnaire_parse

CONDITIONS = ("MT:original", "CF:original", "MT+CF:original", "MT+CF:revised")
CHOICES = ["bank", "library", "garden", "kitchen", "school"]

# A researcher's own questionnaire: three dimensions (one without a definition) on seven
# points labelled at the ends and the middle, with its own check instruction.
SEVEN_THREE = questionnaire_parse(
    """
name = "faith-7"
title = "Faithfulness, helpfulness and clarity on seven points"

[scale]
points = 7
labels = {"1" = "Not at all", "4" = "Somewhat", "7" = "Completely"}

[attention_checks]
count = 2
first_after = 2
instruction = "To show that you read this page, choose “{label}” in every row."

[[dimensions]]
key = "faithfulness"
label = "Faithfulness"
statement = "The explanation reflects how the model reached its answer."
definition = "Does it give the reasons the model used, rather than reasons that only sound good?"

[[dimensions]]
key = "helpfulness"
label = "Helpfulness"
statement = "The explanation would help me decide whether to trust the answer."
definition = "Would reading it change how much you rely on the answer, for the better?"

[[dimensions]]
key = "clarity"
label = "Clarity"
statement = "The explanation is clearly written."
""",
    source="faith-7.toml",
)


def explanation_record(condition: str, question: int, /, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "condition": condition,
        "question_id": f"q{question:03d}",
        "question": f"Where would you most likely keep item number {question}?",
        "choices": CHOICES,
        "answer": CHOICES[question % 5],
        "predicted_answer": CHOICES[(question + CONDITIONS.index(condition)) % 5]
        if condition in CONDITIONS
        else CHOICES[0],
        # Distinct per condition without naming it: pages must never reveal the condition.
        "explanation": f"Item {question} belongs there, by line of reasoning "
        f"{sum(map(ord, condition)) % 997}" + " and so on" * (question % 4) + ".",
        "student": "t5-v1_1-small",
        "run": "test",
    }
    record.update(overrides)
    return record


def explanation_lines(*, questions: int = 16, conditions: Sequence[str] = CONDITIONS) -> list[str]:
    return [
        json.dumps(explanation_record(condition, q))
        for q in range(questions)
        for condition in conditions
    ]


def study_make(
    *,
    slug: str = "pilot",
    questions: int = 16,
    conditions: Sequence[str] = CONDITIONS,
    live: bool = True,
    per_condition: int | None = None,
    questionnaire: QuestionnaireRow | None = None,
    **fields: Any,
) -> Study:
    """A study of ``questions`` × ``conditions`` explanations; ``questionnaire`` None rates
    them with the default questionnaire."""
    records = explanations_read(explanation_lines(questions=questions, conditions=conditions))
    study = study_create_from_explanations(
        slug=slug,
        records=records,
        live=live,
        per_condition=per_condition,
        questionnaire=questionnaire,
    )
    if fields:
        Study.objects.filter(pk=study.pk).update(**fields)
        study.refresh_from_db()
    return study


def questionnaire_study_make(questionnaire: Questionnaire, *, slug: str = "pilot") -> Study:
    """A live study rated with ``questionnaire``, stored first as a researcher imports it."""
    row, _ = questionnaire_import(questionnaire)
    return study_make(slug=slug, questionnaire=row)


def entry_url(
    study: Study, pid: str, *, study_id: str = "prolific-study", session_id: str = "s1"
) -> str:
    url = reverse("studyapp:entry", kwargs={"slug": study.slug})
    return f"{url}?PROLIFIC_PID={pid}&STUDY_ID={study_id}&SESSION_ID={session_id}"


def step_url(study: Study) -> str:
    return reverse("studyapp:step", kwargs={"slug": study.slug})


def page_step_token(html: str) -> str:
    field = BeautifulSoup(html, "html.parser").find("input", attrs={"name": "step"})
    assert field is not None, "the page has no item form"
    return str(field["value"])


def page_instructed_value(html: str, questionnaire: Questionnaire = PLAIN_5) -> int:
    """The value an attention-check page asks for, read from its text as a person would."""
    text = BeautifulSoup(html, "html.parser").get_text(" ")
    match = re.search(r"please choose “([^”]+)”", text)
    assert match is not None, "the page has no instruction"
    by_label = {label: value for value, label in questionnaire.scale.named.items()}
    return by_label[match.group(1)]


def rating_post(
    token: str, value: int | dict[str, int], questionnaire: Questionnaire = PLAIN_5
) -> dict[str, Any]:
    values = value if isinstance(value, dict) else dict.fromkeys(questionnaire.keys, value)
    return {"step": token, **values}


def participant_run(
    client: Client, study: Study, pid: str, *, value: int = 4, fail_checks: bool = False
) -> Any:
    """Go from the Prolific link to the completion page over plain HTTP; return the last response.

    Rated items get ``value`` on every dimension; attention checks are answered as
    instructed unless ``fail_checks``.
    """
    response = client.get(entry_url(study, pid))
    assert response.status_code == 302, response.status_code
    consent = reverse("studyapp:consent", kwargs={"slug": study.slug})
    if response["Location"] == consent:
        response = client.post(consent, {"decision": "agree"})
        assert response.status_code == 302, response.status_code
    for _ in range(100):
        page = client.get(step_url(study))
        if page.status_code == 302:
            return client.get(page["Location"])
        token = page_step_token(page.content.decode())
        answer = value
        if token.startswith("check-"):
            instructed = page_instructed_value(page.content.decode())
            answer = (instructed % 5) + 1 if fail_checks else instructed
        posted = client.post(step_url(study), rating_post(token, answer))
        assert posted.status_code == 302, posted.status_code
    raise AssertionError("the participant never reached the end of the study")


def binding_of(participant: Participant) -> Binding:
    """The binding a browser holds once ``participant`` has consented in it."""
    return Binding(pid=participant.prolific_pid, participant=participant.pk)


def item_answer(
    participant: Participant,
    *,
    step_token: str,
    values: Mapping[str, int],
    now: datetime | None = None,
    show_following: bool = False,
) -> Submission:
    """Submit ``values`` for ``participant``'s step as their browser does, and copy the stored
    status, completion time and attention failures onto ``participant``."""
    submission = item_submit(
        binding=binding_of(participant),
        slug=participant.study.slug,
        step_token=step_token,
        values=values,
        now=now,
        show_following=show_following,
    )
    assert submission is not None, "the participant's binding names them in their study"
    for name in ("status", "completed_at", "attention_failures"):
        setattr(participant, name, getattr(submission.participant, name))
    return submission


def rating_record(
    *,
    participant: Participant,
    step_token: str,
    values: Mapping[str, int],
    now: datetime | None = None,
) -> RecordOutcome | None:
    """What ``item_answer`` recorded; None when the participant could no longer answer."""
    return item_answer(participant, step_token=step_token, values=values, now=now).outcome
