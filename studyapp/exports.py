"""The ratings export: one row per rated item, in the CSV format of docs/formats.md.

``export_ratings``, the API and the admin all build their output here, so every route
gives the same rows. Participants appear under a salted hash of their Prolific ID;
excluded participants are kept and flagged, because deciding whom to drop is the
analysis's job and must stay visible in the data.

The rating columns are the dimension keys of the study's questionnaire, in its order, with
a ``scale_points`` column when its scale is not 5 points (``studyformats.ratings``); the
default questionnaire gives exactly ``RATINGS_COLUMNS``. Studies are exported together only
when their questionnaires give the same columns.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from django.conf import settings
from django.db.models import Q, QuerySet
from django.db.models.functions import Length
from django.http import HttpResponse
from django.utils import timezone

from studyapp.models import Assignment, ParticipantDemographics, Rating, Study
from studyformats.questionnaire import PLAIN_5, Questionnaire

# The ratings CSV's columns and escaping are defined once, beside its reader: what the export
# writes, the analysis reads back unchanged.
from studyformats.ratings import (
    DEFAULT_SCALE_POINTS,
    SCALE_POINTS_COLUMN,
    cell_escape,
    ratings_header,
)

# The default questionnaire's columns, which every study without its own questionnaire gets.
from studyformats.ratings import RATINGS_COLUMNS as RATINGS_COLUMNS

PROLIFIC_ID_COLUMN = "prolific_pid"


class RatingsExportError(ValueError):
    """Studies whose ratings cannot share one CSV; the message names each study's columns."""


class TextWriter(Protocol):
    """Where CSV goes: an open text file, a StringIO or a Django HttpResponse."""

    def write(self, text: str, /) -> object: ...


# Ids a query at most; far below SQLite's (32766) and PostgreSQL's limits on parameters.
CHUNK = 2000


def participant_pseudonym(prolific_pid: str) -> str:
    """A stable pseudonym: HMAC-SHA256 of the Prolific ID keyed with ``PSEUDONYM_SALT``.

    Keyed (not a plain hash) so that nobody without the salt can confirm a guessed ID by
    hashing it; the same ID gets the same pseudonym in every study, so repeat participants
    stay recognisable.
    """
    salt = str(settings.PSEUDONYM_SALT).encode()
    digest = hmac.new(salt, prolific_pid.encode(), hashlib.sha256).hexdigest()
    return f"p{digest[:16]}"


# What one rated item needs from the database, read as plain values: building model
# instances for every assignment, participant and explanation was most of an export's time.
ITEM_FIELDS = (
    "id",
    "position",
    "shown_at",
    "answered_at",
    "participant_id",
    "participant__prolific_pid",
    "participant__attention_failures",
    "participant__excluded",
    "question__external_id",
    "explanation_id",
    "explanation__length",
    "explanation_chars",
    "explanation__condition__name",
)


def ratings_items(study: Study) -> QuerySet[Assignment, dict[str, Any]]:
    """The rated items of a study in export order (participant by start time, then position).

    ``explanation_chars`` is counted by the database (characters, as Python's ``len``), so
    the explanation texts themselves are not read.
    """
    return (
        Assignment.objects.filter(participant__study=study, answered_at__isnull=False)
        .annotate(explanation_chars=Length("explanation__text"))
        .order_by("participant__started_at", "participant_id", "position")
        .values(*ITEM_FIELDS)
    )


def study_covariates(studies: Sequence[Study]) -> list[str]:
    """The demographic columns with at least one value among these studies' participants.

    A column Prolific did not export (or left empty for everyone) would only add blanks.
    """
    records = ParticipantDemographics.objects.filter(participant__study__in=list(studies))
    found: list[str] = []
    for name in ParticipantDemographics.COVARIATES:
        empty = Q(**{f"{name}__isnull": True})
        if name != "age":
            empty |= Q(**{name: ""})
        if records.exclude(empty).exists():
            found.append(name)
    return found


def ratings_columns(
    *,
    covariates: Sequence[str] = (),
    include_prolific_ids: bool = False,
    questionnaire: Questionnaire = PLAIN_5,
) -> list[str]:
    """The export's columns: the documented ones (docs/formats.md) for the questionnaire's
    dimensions and scale, then the given demographic covariates.

    Examples
    --------
    >>> ratings_columns() == list(RATINGS_COLUMNS)
    True
    """
    header = ratings_header(questionnaire.keys, questionnaire.scale.points)
    columns = [*header, *covariates]
    if include_prolific_ids:
        columns.append(PROLIFIC_ID_COLUMN)
    return columns


def studies_questionnaire(studies: Sequence[Study]) -> Questionnaire:
    """The questionnaire whose columns an export of these studies has (plain-5 for none).

    Several studies share one file when their questionnaires have the same dimension keys
    in the same order and the same number of points: the rows' ``study`` column tells them
    apart. Otherwise a column would be empty for some rows, or a 4 would mean different
    things on different scales, so such an export is refused.

    Raises
    ------
    RatingsExportError
        The studies' questionnaires give different columns; the message lists each study's.
    """
    documents = [(study.slug, study.questionnaire_document) for study in studies]
    if not documents:
        return PLAIN_5
    shapes = {(doc.keys, doc.scale.points) for _, doc in documents}
    if len(shapes) > 1:
        described = "; ".join(
            f"{slug}: {', '.join(doc.keys)} on {doc.scale.points} points" for slug, doc in documents
        )
        raise RatingsExportError(
            "these studies rate different dimensions or scales and cannot share one ratings "
            f"file ({described}); export them one at a time"
        )
    return documents[0][1]


def ratings_rows_build(
    items: Iterable[dict[str, Any]],
    *,
    study: Study,
    include_prolific_ids: bool = False,
    covariates: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Export rows for these items of ``ratings_items`` (a whole study or one page of it).

    Values keep their types (ints, floats, bools; None where there is no value);
    ``ratings_write_csv`` turns them into text. The rating keys are the dimension keys of
    the study's questionnaire, in its order.
    """
    items = list(items)
    questionnaire = study.questionnaire_document
    dimensions = questionnaire.keys
    points = questionnaire.scale.points
    if covariates is None:
        covariates = study_covariates([study])
    values = _ratings_by_assignment([item["id"] for item in items])
    demographics = (
        _demographics_by_participant({item["participant_id"] for item in items})
        if covariates
        else {}
    )
    pseudonyms: dict[int, str] = {}
    rows: list[dict[str, Any]] = []
    for item in items:
        participant_id = item["participant_id"]
        pid = item["participant__prolific_pid"]
        if participant_id not in pseudonyms:
            pseudonyms[participant_id] = participant_pseudonym(pid)
        row: dict[str, Any] = {
            "participant": pseudonyms[participant_id],
            "study": study.slug,
            "position": item["position"],
            "question_id": item["question__external_id"],
            "condition": item["explanation__condition__name"],
            "explanation_id": item["explanation_id"],
            "explanation_length": item["explanation__length"],
            "explanation_chars": item["explanation_chars"],
        }
        ratings = values.get(item["id"], {})
        for dimension in dimensions:
            row[dimension] = ratings.get(dimension)
        row["seconds_on_item"] = _seconds_between(item["shown_at"], item["answered_at"])
        # The count of failed checks, not a yes/no: the analysis applies its own threshold.
        row["attention_failed"] = item["participant__attention_failures"]
        row["excluded"] = item["participant__excluded"]
        if points != DEFAULT_SCALE_POINTS:
            row[SCALE_POINTS_COLUMN] = points
        if covariates:
            row.update(_covariates_of(demographics.get(participant_id), covariates))
        if include_prolific_ids:
            row[PROLIFIC_ID_COLUMN] = pid
        rows.append(row)
    return rows


def _seconds_between(shown: datetime | None, answered: datetime | None) -> float | None:
    if shown is None or answered is None:
        return None
    return round((answered - shown).total_seconds(), 3)


def ratings_rows(study: Study, *, include_prolific_ids: bool = False) -> list[dict[str, Any]]:
    """Every rated item of the study as a dict, keys in the ratings-CSV column order (the
    columns of ``ratings_columns`` for the study's questionnaire)."""
    return ratings_rows_build(
        ratings_items(study), study=study, include_prolific_ids=include_prolific_ids
    )


def ratings_write_csv(
    study: Study, fileobj: TextWriter, *, include_prolific_ids: bool = False
) -> int:
    """Write the study's ratings export as CSV to an open text file; return the row count."""
    return ratings_export_write([study], fileobj, include_prolific_ids=include_prolific_ids)


def ratings_download(name: str) -> HttpResponse:
    """An empty CSV download response named ``ratings-<name>-<time>.csv``; write rows into it."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"ratings-{name}-{timezone.now():%Y%m%d-%H%M}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def ratings_export_write(
    studies: Sequence[Study],
    fileobj: TextWriter,
    *,
    participant_ids: Collection[int] | None = None,
    include_prolific_ids: bool = False,
) -> int:
    """Write the ratings of several studies (optionally only some participants) as one CSV.

    Rows are told apart by the ``study`` column; the covariate columns are those with a value in any
    of the studies. Returns the number of rows written.

    Raises
    ------
    RatingsExportError
        The studies' questionnaires give different columns (``studies_questionnaire``);
        nothing is written then.
    """
    questionnaire = studies_questionnaire(studies)
    covariates = study_covariates(studies)
    columns = ratings_columns(
        covariates=covariates,
        include_prolific_ids=include_prolific_ids,
        questionnaire=questionnaire,
    )
    rows: list[dict[str, Any]] = []
    for study in studies:
        items = ratings_items(study)
        if participant_ids is not None:
            items = items.filter(participant_id__in=list(participant_ids))
        rows.extend(
            ratings_rows_build(
                items,
                study=study,
                include_prolific_ids=include_prolific_ids,
                covariates=covariates,
            )
        )
    rows_write_csv(rows, columns, fileobj)
    return len(rows)


def rows_write_csv(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], fileobj: TextWriter
) -> None:
    writer = csv.writer(fileobj, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell_escape(row.get(column)) for column in columns])


def _ratings_by_assignment(assignment_ids: list[int]) -> dict[int, dict[str, int]]:
    values: dict[int, dict[str, int]] = defaultdict(dict)
    # Chunked so that a large study stays under SQLite's limit on query parameters.
    for start in range(0, len(assignment_ids), CHUNK):
        chunk = assignment_ids[start : start + CHUNK]
        for assignment_id, dimension, value in Rating.objects.filter(
            assignment_id__in=chunk
        ).values_list("assignment_id", "dimension", "value"):
            values[assignment_id][dimension] = value
    return values


def _demographics_by_participant(participant_ids: set[int]) -> dict[int, ParticipantDemographics]:
    ids = sorted(participant_ids)
    found: dict[int, ParticipantDemographics] = {}
    for start in range(0, len(ids), CHUNK):
        for record in ParticipantDemographics.objects.filter(
            participant_id__in=ids[start : start + CHUNK]
        ):
            found[record.participant_id] = record
    return found


def _covariates_of(
    record: ParticipantDemographics | None, covariates: Sequence[str]
) -> dict[str, Any]:
    if record is None:
        return dict.fromkeys(covariates)
    return {
        name: getattr(record, name) if getattr(record, name) != "" else None for name in covariates
    }
