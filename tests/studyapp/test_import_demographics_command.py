from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from studyapp.models import ParticipantDemographics
from tests.studyapp.participant_pool import study_make
from tests.studyapp.researcher_data import participant_finish

pytestmark = pytest.mark.django_db


def test_it_imports_and_lists_unmatched_ids(tmp_path, capsys):
    study = study_make()
    participant_finish(study, "P1")
    path = tmp_path / "prolific.csv"
    path.write_bytes("\ufeffParticipant id,Age,Sex\nP1,45,Male\nX9,30,Female\n".encode())
    call_command("import_demographics", "pilot", str(path))
    out = capsys.readouterr().out
    assert "Demographics of 1 participants stored (1 new, 0 updated); columns: age, sex." in out
    assert "1 participant id(s) in the file match nobody in the study: X9" in out
    assert ParticipantDemographics.objects.get().age == 45


def test_a_bad_file_is_refused_with_its_lines(tmp_path):
    study_make()
    path = tmp_path / "prolific.csv"
    path.write_text("Participant id,Age\nP1,-4\n")
    with pytest.raises(CommandError) as caught:
        call_command("import_demographics", "pilot", str(path))
    assert "nothing was imported" in str(caught.value)
    assert "line 2: age '-4' is not a whole number" in str(caught.value)


@pytest.mark.parametrize(
    ("slug", "name", "message"),
    [("nope", "x.csv", "no study 'nope'"), ("pilot", "missing.csv", "cannot read")],
)
def test_unknown_study_or_file_is_a_clear_error(tmp_path, slug, name, message):
    study_make()
    with pytest.raises(CommandError, match=message):
        call_command("import_demographics", slug, str(tmp_path / name))


def test_a_file_that_is_not_text_is_refused(tmp_path):
    study_make()
    path = tmp_path / "prolific.csv"
    path.write_bytes(b"\xff\xfe\x00P\x00")
    with pytest.raises(CommandError, match="is not UTF-8 text"):
        call_command("import_demographics", "pilot", str(path))
