"""The Prolific services that need no server: bodies, review lists, bonuses, comparison, codes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from studyapp.models import Participant, ProlificSubmission, Study
from studyapp.prolific.services import (
    ProlificServiceError,
    StudyDraft,
    bonus_csv,
    bonus_lines_completed,
    bonus_lines_parse,
    external_study_url,
    prolific_comparison,
    review_rows,
    study_create_body,
    study_status_follow_prolific,
    submission_status_apply,
)
from tests.studyapp.participant_pool import participant_run, study_make

pytestmark = pytest.mark.django_db


def draft(**overrides: object) -> StudyDraft:
    values: dict[str, object] = {
        "name": "Rate explanations",
        "description": "Read answers and rate their explanations.",
        "reward": 225,
        "estimated_completion_time": 15,
        "total_available_places": 117,
        "site_url": "https://study.example.org/",
    }
    values.update(overrides)
    return StudyDraft(**values)  # type: ignore[arg-type]


def test_the_create_body_carries_the_link_the_codes_and_the_settings() -> None:
    study = study_make(slug="cqa-2024", time_limit_minutes=60)

    body = study_create_body(study, draft(), "FAILCODE")

    assert body["external_study_url"] == (
        "https://study.example.org/s/cqa-2024/?PROLIFIC_PID={{%PROLIFIC_PID%}}"
        "&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
    )
    assert body["prolific_id_option"] == "url_parameters"
    assert body["completion_codes"] == [
        {
            "code": study.completion_code,
            "code_type": "COMPLETED",
            "actions": [{"action": "AUTOMATICALLY_APPROVE"}],
        },
        {
            "code": "FAILCODE",
            "code_type": "FAILED_ATTENTION_CHECK",
            "actions": [{"action": "MANUALLY_REVIEW"}],
        },
    ]
    assert (body["reward"], body["estimated_completion_time"], body["maximum_allowed_time"]) == (
        225,
        15,
        60,
    )
    assert body["total_available_places"] == 117
    assert "filters" not in body
    assert "filter_set_id" not in body


def test_manual_review_filters_and_a_filter_set() -> None:
    study = study_make()
    age = [{"filter_id": "age", "selected_range": {"lower": 18, "upper": 65}}]
    reviewed = study_create_body(study, draft(review_completed=True, filters=age), "F")
    assert reviewed["completion_codes"][0]["actions"] == [{"action": "MANUALLY_REVIEW"}]
    assert reviewed["filters"] == age
    with_set = study_create_body(study, draft(filter_set_id="fs1", filters=age), "F")
    assert with_set["filter_set_id"] == "fs1"
    assert "filters" not in with_set


def test_the_hourly_rate_is_the_reward_over_the_estimated_time() -> None:
    assert draft(reward=225, estimated_completion_time=15).hourly_rate() == 900
    assert draft(reward=100, estimated_completion_time=7).hourly_rate() == 857


def test_the_external_url_ignores_a_trailing_slash() -> None:
    study = study_make(slug="s")
    assert external_study_url(study, "https://x.org") == external_study_url(study, "https://x.org/")


def test_a_participant_who_failed_the_checks_gets_the_second_code() -> None:
    study = study_make(failed_checks_code="CHECKFAIL")
    passed = participant_run(Client(), study, "good").content.decode()
    failed = participant_run(Client(), study, "bad", fail_checks=True).content.decode()
    assert study.completion_code in passed
    assert "CHECKFAIL" not in passed
    assert "cc=CHECKFAIL" in failed
    assert study.completion_code not in failed


def test_without_a_second_code_everyone_gets_the_completion_code() -> None:
    study = study_make()
    failed = participant_run(Client(), study, "bad", fail_checks=True).content.decode()
    assert f"cc={study.completion_code}" in failed


def _submitted(study: Study, pid: str, status: str, *, fail: bool = False) -> Participant:
    participant_run(Client(), study, pid, fail_checks=fail)
    submission_status_apply(
        study=study, submission_id=f"sub-{pid}", participant_id=pid, status=status, source="sync"
    )
    return Participant.objects.get(study=study, prolific_pid=pid)


def test_review_sorts_approvable_from_fair_to_reject() -> None:
    study = study_make(prolific_study_id="prolific-study")
    _submitted(study, "good", "AWAITING REVIEW")
    _submitted(study, "careless", "AWAITING REVIEW", fail=True)
    _submitted(study, "paid", "APPROVED")
    excluded = _submitted(study, "excluded", "AWAITING REVIEW")
    Participant.objects.filter(pk=excluded.pk).update(excluded=True)

    rows = {row.submission.participant_pid: row for row in review_rows(study)}

    assert [pid for pid, row in rows.items() if row.approvable] == ["good"]
    assert [pid for pid, row in rows.items() if row.rejectable] == ["careless"]
    assert rows["careless"].failed_checks == 2


def test_bonus_lists_are_checked_line_by_line() -> None:
    study = study_make()
    participant_run(Client(), study, "p1")
    participant_run(Client(), study, "p2")

    lines = bonus_lines_parse("participant_id,amount\np1,1.50\np2,0.25\n", study)

    assert bonus_csv(lines) == "p1,1.50\np2,0.25\n"
    with pytest.raises(ProlificServiceError) as problems:
        bonus_lines_parse("p1,1.5\np1,2\nstranger,1\np2,-1\np2,1.234\np2\n", study)
    text = str(problems.value)
    assert "line 2: 'p1' appears more than once" in text
    assert "line 3: 'stranger' took no part" in text
    assert "line 4: the bonus must be more than 0" in text
    assert "line 5: '1.234' is not an amount" in text
    assert "line 6: expected 'participant id,amount'" in text
    with pytest.raises(ProlificServiceError, match="empty"):
        bonus_lines_parse("\n\n", study)


def test_the_completed_rule_leaves_out_the_excluded_and_the_unfinished() -> None:
    study = study_make()
    participant_run(Client(), study, "done")
    participant_run(Client(), study, "excluded")
    Participant.objects.filter(prolific_pid="excluded").update(excluded=True)
    Client().get(f"/s/{study.slug}/?PROLIFIC_PID=started&STUDY_ID=x&SESSION_ID=y")

    lines = bonus_lines_completed(study, Decimal("0.50"))

    assert [(line.participant_id, line.amount) for line in lines] == [("done", Decimal("0.50"))]


def test_the_comparison_names_each_disagreement() -> None:
    study = study_make(prolific_study_id="prolific-study")
    participant_run(Client(), study, "agrees")
    participant_run(Client(), study, "no-code")
    participant_run(Client(), study, "unknown-there")
    for pid, status in (("agrees", "AWAITING REVIEW"), ("no-code", "RETURNED")):
        submission_status_apply(
            study=study, submission_id=f"s-{pid}", participant_id=pid, status=status, source="sync"
        )
    ProlificSubmission.objects.create(
        study=study, submission_id="s-ghost", participant_pid="ghost", status="ACTIVE"
    )

    comparison = prolific_comparison(study)

    assert comparison.ours == {"Completed": 3}
    assert comparison.theirs == {"ACTIVE": 1, "AWAITING REVIEW": 1, "RETURNED": 1}
    problems = {d.participant_pid: d.problem for d in comparison.disagreements}
    assert problems == {
        "no-code": "completed here but returned on Prolific",
        "unknown-there": "took part here, but Prolific has no submission",
        "ghost": "active on Prolific, never arrived here",
    }


@pytest.mark.parametrize(
    ("ours", "theirs", "after"),
    [
        ("live", "PAUSED", "paused"),
        ("paused", "ACTIVE", "live"),
        ("live", "COMPLETED", "closed"),
        ("closed", "ACTIVE", "closed"),  # reopening is a researcher's decision
        ("live", "AWAITING REVIEW", "live"),
    ],
)
def test_our_status_follows_prolifics(ours: str, theirs: str, after: str) -> None:
    study = study_make(status=ours)
    study_status_follow_prolific(study=study, prolific_status=theirs)
    study.refresh_from_db()
    assert study.status == after
