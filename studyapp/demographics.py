"""Importing Prolific's demographic export (CSV) into a study's participants.

Prolific's export has one row per submission, keyed by "Participant id", with columns
such as "Age", "Sex", "Country of residence". Like the explanations file, the whole
file is checked first and nothing is stored if any row is bad. IDs that match no
participant of the study are reported back, never silently dropped, because they
usually mean the wrong study's export was uploaded.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import CharField
from django.utils import timezone

from studyapp.models import Participant, ParticipantDemographics, Study
from studyapp.problems import FileProblemsError, ProblemList

PARTICIPANT_ID_HEADERS = ("participant id", "participant_id", "prolific_pid")

# Prolific's column names (lower-cased) mapped to ParticipantDemographics fields.
COLUMN_FIELDS: dict[str, str] = {
    "age": "age",
    "sex": "sex",
    "ethnicity simplified": "ethnicity",
    "ethnicity": "ethnicity",
    "country of birth": "country_of_birth",
    "country of residence": "country",
    "country": "country",
    "nationality": "nationality",
    "language": "language",
    "first language": "language",
    "student status": "student_status",
    "employment status": "employment_status",
}

FIELD_MAX_LENGTHS = {
    f.name: f.max_length
    for f in ParticipantDemographics._meta.get_fields()
    if isinstance(f, CharField) and f.max_length
}

# What Prolific writes where it may no longer share an answer; stored as "no value".
MISSING_VALUES = {"", "data_expired", "consent_revoked", "revoked", "n/a", "na", "none"}

AGE_MAX = 120
# The width of Participant.prolific_pid.
PARTICIPANT_ID_MAX_LENGTH = 64
# Enough unmatched IDs to recognise a wrong file without flooding the page or terminal.
UNMATCHED_SHOWN = 20


class DemographicsFileError(FileProblemsError):
    """The file cannot be imported; ``errors`` lists its problems as 'line N: ...' (the
    first ``PROBLEMS_SHOWN``, then how many more)."""

    what = "the demographics file"


@dataclass
class DemographicsImportSummary:
    created: int = 0
    updated: int = 0
    columns: list[str] = field(default_factory=list)
    unmatched_ids: list[str] = field(default_factory=list)

    @property
    def matched(self) -> int:
        return self.created + self.updated


def demographics_read(lines: Iterable[str]) -> tuple[list[str], dict[str, dict[str, object]]]:
    """Parse a Prolific demographic export; return (fields found, {participant id: values}).

    Raises ``DemographicsFileError`` listing the bad lines (checking stops after
    ``PROBLEMS_SHOWN`` problems; the lines left are only counted).
    """
    remaining = iter(lines)
    reader = csv.reader(remaining)
    try:
        header = next(reader)
    except StopIteration:
        raise DemographicsFileError(["the file is empty"]) from None
    except csv.Error as exc:
        raise DemographicsFileError([f"line 1: not valid CSV ({exc})"]) from None
    names = [name.strip().lstrip("\ufeff").lower() for name in header]
    id_index = next((i for i, name in enumerate(names) if name in PARTICIPANT_ID_HEADERS), None)
    if id_index is None:
        raise DemographicsFileError(
            ["line 1: no 'Participant id' column; is this Prolific's demographic export?"]
        )
    columns = {i: COLUMN_FIELDS[name] for i, name in enumerate(names) if name in COLUMN_FIELDS}
    if not columns:
        raise DemographicsFileError(
            [
                "line 1: no demographic columns found (expected some of: "
                "Age, Sex, Ethnicity simplified, Country of birth, Country of residence, "
                "Nationality, Language, Student status, Employment status)"
            ]
        )
    errors = ProblemList()
    rows: dict[str, dict[str, object]] = {}
    first_line: dict[str, int] = {}
    try:
        for cells in reader:
            if errors.full:
                # Refused whatever follows: count the rest (this row too) instead of checking it.
                errors.unchecked_lines += any(cell.strip() for cell in cells)
                errors.skip_rest(remaining)
                break
            number = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                errors.add(f"line {number}: {len(cells)} cells, the header has {len(header)}")
                continue
            if any("\x00" in cell for cell in cells):
                # The csv module passes NUL through; PostgreSQL refuses it in text.
                errors.add(f"line {number}: contains a NUL character")
                continue
            pid = cells[id_index].strip()
            if not pid:
                errors.add(f"line {number}: the participant id is empty")
                continue
            if len(pid) > PARTICIPANT_ID_MAX_LENGTH:
                errors.add(
                    f"line {number}: the participant id is {len(pid)} characters long; "
                    f"Prolific ids have at most {PARTICIPANT_ID_MAX_LENGTH}"
                )
                continue
            if pid in first_line:
                errors.add(
                    f"line {number}: participant '{pid}' again (first on line {first_line[pid]})"
                )
                continue
            first_line[pid] = number
            values, problems = _row_values(cells, columns)
            errors.extend(f"line {number}: {problem}" for problem in problems)
            rows[pid] = values
    except csv.Error as exc:
        errors.add(f"line {reader.line_num}: not valid CSV ({exc})")
    if not rows and not errors:
        errors.add("the file has a header but no participants")
    if errors:
        raise DemographicsFileError(errors)
    found = [f for f in ParticipantDemographics.COVARIATES if f in columns.values()]
    return found, rows


def _row_values(cells: list[str], columns: dict[int, str]) -> tuple[dict[str, object], list[str]]:
    values: dict[str, object] = {}
    problems: list[str] = []
    for index, name in columns.items():
        raw = cells[index].strip()
        if raw.lower() in MISSING_VALUES:
            values[name] = None if name == "age" else ""
        elif name == "age":
            if not raw.isdigit() or not 0 < int(raw) <= AGE_MAX:
                problems.append(f"age '{raw}' is not a whole number of years from 1 to {AGE_MAX}")
            else:
                values[name] = int(raw)
        else:
            limit = FIELD_MAX_LENGTHS[name]
            if len(raw) > limit:
                problems.append(f"{name.replace('_', ' ')} is longer than {limit} characters")
            else:
                values[name] = raw
    return values, problems


def demographics_import(*, study: Study, lines: Iterable[str]) -> DemographicsImportSummary:
    """Store the demographics of every participant of ``study`` named in the file.

    Validates the whole file first (``DemographicsFileError`` and nothing stored if any
    line is bad). Importing again replaces the values of the columns in the file; IDs that
    are not participants of the study are returned in ``unmatched_ids``.
    """
    columns, rows = demographics_read(lines)
    summary = DemographicsImportSummary(columns=columns)
    with transaction.atomic():
        participants = dict(
            Participant.objects.filter(study=study, prolific_pid__in=list(rows)).values_list(
                "prolific_pid", "pk"
            )
        )
        existing = {
            d.participant_id: d
            for d in ParticipantDemographics.objects.filter(
                participant_id__in=list(participants.values())
            )
        }
        now = timezone.now()
        for pid, values in rows.items():
            participant_id = participants.get(pid)
            if participant_id is None:
                summary.unmatched_ids.append(pid)
                continue
            record = existing.get(participant_id)
            if record is None:
                ParticipantDemographics.objects.create(
                    participant_id=participant_id, imported_at=now, **values
                )
                summary.created += 1
            else:
                for name, value in values.items():
                    setattr(record, name, value)
                record.imported_at = now
                record.save()
                summary.updated += 1
    return summary


def unmatched_message(ids: list[str]) -> str:
    """Names the file's IDs that match no participant (the first ``UNMATCHED_SHOWN``)."""
    shown = ", ".join(ids[:UNMATCHED_SHOWN])
    more = f" and {len(ids) - UNMATCHED_SHOWN} more" if len(ids) > UNMATCHED_SHOWN else ""
    return f"{len(ids)} participant id(s) in the file match nobody in the study: {shown}{more}"
