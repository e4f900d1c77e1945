from __future__ import annotations

import pytest

from studyapp.demographics import DemographicsFileError, demographics_import, demographics_read
from studyapp.models import ParticipantDemographics
from tests.studyapp.participant_pool import study_make
from tests.studyapp.researcher_data import participant_finish

pytestmark = pytest.mark.django_db

# The columns of Prolific's demographic export, as it writes them.
PROLIFIC_HEADER = (
    "Submission id,Participant id,Status,Started at,Completed at,Time taken,Completion code,"
    "Total approvals,Age,Sex,Ethnicity simplified,Country of birth,Country of residence,"
    "Nationality,Language,Student status,Employment status"
)


def prolific_row(pid: str, age: str = "31", sex: str = "Female", country: str = "United Kingdom"):
    return (
        f"sub-{pid},{pid},APPROVED,2024-05-01T10:00:00Z,2024-05-01T10:14:00Z,840,C0DE,"
        f"120,{age},{sex},White,{country},{country},{country},English,No,Full-Time"
    )


def lines(*rows: str) -> list[str]:
    return [PROLIFIC_HEADER + "\r\n", *(row + "\r\n" for row in rows)]


def test_prolific_columns_are_stored_per_participant():
    study = study_make()
    participant = participant_finish(study, "5f00aa")
    summary = demographics_import(study=study, lines=lines(prolific_row("5f00aa")))
    assert (summary.created, summary.updated, summary.unmatched_ids) == (1, 0, [])
    record = ParticipantDemographics.objects.get(participant=participant)
    assert record.age == 31
    assert record.sex == "Female"
    assert record.ethnicity == "White"
    assert record.country == record.country_of_birth == "United Kingdom"
    assert (record.language, record.student_status, record.employment_status) == (
        "English",
        "No",
        "Full-Time",
    )
    assert summary.columns == list(ParticipantDemographics.COVARIATES)


def test_ids_that_match_nobody_are_reported():
    study = study_make()
    participant_finish(study, "known")
    other = study_make(slug="other")
    participant_finish(other, "elsewhere")
    summary = demographics_import(
        study=study,
        lines=lines(prolific_row("known"), prolific_row("stranger"), prolific_row("elsewhere")),
    )
    assert summary.matched == 1
    assert summary.unmatched_ids == ["stranger", "elsewhere"]
    assert ParticipantDemographics.objects.count() == 1


def test_importing_again_updates_instead_of_duplicating():
    study = study_make()
    participant_finish(study, "P")
    demographics_import(study=study, lines=lines(prolific_row("P", age="30")))
    summary = demographics_import(study=study, lines=lines(prolific_row("P", age="31")))
    assert (summary.created, summary.updated) == (0, 1)
    assert ParticipantDemographics.objects.get().age == 31


def test_values_prolific_no_longer_shares_are_stored_as_missing():
    study = study_make()
    participant_finish(study, "P")
    demographics_import(
        study=study, lines=lines(prolific_row("P", age="DATA_EXPIRED", sex="CONSENT_REVOKED"))
    )
    record = ParticipantDemographics.objects.get()
    assert (record.age, record.sex) == (None, "")


def test_every_bad_line_is_reported_and_nothing_is_stored():
    study = study_make()
    participant_finish(study, "P")
    participant_finish(study, "Q", seed=1)
    with pytest.raises(DemographicsFileError) as caught:
        demographics_import(
            study=study,
            lines=lines(
                prolific_row("P", age="thirty"),
                prolific_row("Q"),
                prolific_row("P"),
                "too,few,cells",
                prolific_row("", age="40"),
                prolific_row("R", age="300"),
            ),
        )
    assert caught.value.errors == [
        "line 2: age 'thirty' is not a whole number of years from 1 to 120",
        "line 4: participant 'P' again (first on line 2)",
        "line 5: 3 cells, the header has 17",
        "line 6: the participant id is empty",
        "line 7: age '300' is not a whole number of years from 1 to 120",
    ]
    assert not ParticipantDemographics.objects.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([], "the file is empty"),
        (["Age,Sex\n", "30,Male\n"], "line 1: no 'Participant id' column"),
        (["Participant id,Status\n", "P,APPROVED\n"], "line 1: no demographic columns found"),
        (["Participant id,Age\n"], "the file has a header but no participants"),
    ],
)
def test_files_that_are_not_a_demographic_export_are_refused(content, message):
    with pytest.raises(DemographicsFileError) as caught:
        demographics_read(content)
    assert caught.value.errors[0].startswith(message)


def test_a_byte_order_mark_and_other_column_spellings_are_accepted():
    columns, rows = demographics_read(["\ufeffparticipant_id,AGE,Country\n", "P,22,Spain\n"])
    assert columns == ["age", "country"]
    assert rows == {"P": {"age": 22, "country": "Spain"}}
