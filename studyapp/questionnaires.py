"""Questionnaire documents from researchers' input, and the item page a questionnaire draws.

A questionnaire arrives as a file (the admin's upload, the API's upload, a command's path) or
as text (the admin's text box, the API's JSON body); each is read here into a validated
``studyformats.questionnaire.Questionnaire`` or refused with the format's one-line message.
``questionnaire_preview_html`` draws one item page with the participant templates, so a
researcher sees exactly what a participant will see before any study uses the questionnaire.
"""

from __future__ import annotations

from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.template.loader import render_to_string

from studyapp.forms import RatingForm
from studyapp.models import Assignment, Explanation, Question, Study
from studyapp.participation.queries import Step
from studyformats.questionnaire import (
    Questionnaire,
    QuestionnaireError,
    questionnaire_from_data,
    questionnaire_parse,
)

# A questionnaire is a page or two of text; this stops a wrong file from filling memory.
QUESTIONNAIRE_MAX_BYTES = 256 * 1024
QUESTIONNAIRE_KINDS = {".toml": "toml", ".json": "json"}

# The sample item a preview shows: a question of the kind the studies ask, with an answer and
# an explanation, so the page has the length and layout of a real one.
PREVIEW_QUESTION = "Where would you put a mug after drinking the last of your coffee?"
PREVIEW_CHOICES = ("bookshelf", "sink", "garden", "closet", "mailbox")
PREVIEW_ANSWER = "sink"
PREVIEW_EXPLANATION = (
    "A mug that has been used is dirty, and dirty dishes go to the sink to be washed; a "
    "bookshelf, a garden, a closet or a mailbox is not where dishes are cleaned."
)
PREVIEW_STUDY_TITLE = "Explanation study"
PREVIEW_ITEMS = 12


def questionnaire_renamed(document: Questionnaire, name: str) -> Questionnaire:
    """``document`` under another name, validated again (the name must be a slug).

    Examples
    --------
    >>> from studyformats.questionnaire import PLAIN_5
    >>> questionnaire_renamed(PLAIN_5, "my-plain").name
    'my-plain'
    """
    if name == document.name:
        return document
    return questionnaire_from_data({**document.as_data(), "name": name}, source=f"--name {name}")


def questionnaire_from_text(text: str, *, source: str = "questionnaire") -> Questionnaire:
    """A questionnaire from TOML or JSON text (JSON when it starts with '{')."""
    return questionnaire_parse(text.lstrip("\ufeff"), source=source)


def questionnaire_from_upload(upload: UploadedFile) -> Questionnaire:
    """A questionnaire from an uploaded .toml or .json file; ``QuestionnaireError`` names
    the file and the key or line that is wrong."""
    name = upload.name or "questionnaire"
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    kind = QUESTIONNAIRE_KINDS.get(suffix)
    if kind is None:
        raise QuestionnaireError(f"{name}: a questionnaire file ends in .toml or .json")
    if upload.size is not None and upload.size > QUESTIONNAIRE_MAX_BYTES:
        raise QuestionnaireError(
            f"{name}: the file is {upload.size // 1024} KB; a questionnaire may be at most "
            f"{QUESTIONNAIRE_MAX_BYTES // 1024} KB"
        )
    upload.seek(0)
    data = upload.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise QuestionnaireError(f"{name}: line {line}: the file is not UTF-8 text") from None
    return questionnaire_parse(text, source=name, kind=kind)


def preview_step() -> Step:
    """The first item of a study, built in memory from the sample question (nothing is saved)."""
    question = Question(
        external_id="preview",
        text=PREVIEW_QUESTION,
        choices=list(PREVIEW_CHOICES),
        answer=PREVIEW_ANSWER,
    )
    explanation = Explanation(
        question=question,
        predicted_answer=PREVIEW_ANSWER,
        text=PREVIEW_EXPLANATION,
        length=Explanation.words_count(PREVIEW_EXPLANATION),
    )
    assignment = Assignment(position=1, explanation=explanation, question=question)
    return Step(item_number=1, item_total=PREVIEW_ITEMS, assignment=assignment)


def questionnaire_preview_html(questionnaire: Questionnaire, *, csrf_token: str) -> str:
    """One item page under ``questionnaire``, drawn by the participant templates.

    The page is rendered without the researcher's request, so it carries none of the
    admin's messages; shown in a sandboxed frame it can be looked at and tabbed through,
    and its form submits nowhere.
    """
    context: dict[str, Any] = {
        "study": Study(slug="preview", title=PREVIEW_STUDY_TITLE),
        "step": preview_step(),
        "form": RatingForm(questionnaire=questionnaire),
        "questionnaire": questionnaire,
        "instructed": None,
        "stale_message": None,
        "likert_blank": None,
        # The page's form carries a token as a participant's does; sandboxed, it is never sent.
        "csrf_token": csrf_token,
    }
    return render_to_string("studyapp/step.html", context)
