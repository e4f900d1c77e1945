"""The questionnaire admin: versions edited as TOML or a file, frozen versions kept, the
preview of the participant's item page, and the study's questionnaire picker."""

from __future__ import annotations

import random

import pytest
from bs4 import BeautifulSoup
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from studyapp.models import Questionnaire, Study
from studyapp.participation.services import participant_start
from studyapp.studies.services import questionnaire_import
from studyformats.questionnaire import PLAIN_5, questionnaire_parse, questionnaire_toml
from tests.studyapp.participant_pool import study_make
from tests.studyapp.researcher_data import client_for
from tests.studyapp.test_admin_study import change_form_data
from tests.studyapp.test_questionnaires import BAD_FILES, FAITH_7

pytestmark = pytest.mark.django_db

ADD = reverse("admin:studyapp_questionnaire_add")
LIST = reverse("admin:studyapp_questionnaire_changelist")
PREVIEW_TEXT = reverse("admin:studyapp_questionnaire_preview_text")


@pytest.fixture
def researcher():
    return client_for("researcher")


@pytest.fixture
def faith() -> Questionnaire:
    return questionnaire_import(questionnaire_parse(FAITH_7))[0]


def change_url(questionnaire: Questionnaire) -> str:
    return reverse("admin:studyapp_questionnaire_change", args=[questionnaire.pk])


def text_of(response) -> str:
    return response.content.decode().replace("&#x27;", "'").replace("&quot;", '"')


def page_messages(response) -> list[str]:
    page = BeautifulSoup(response.content, "html.parser")
    return [li.get_text().strip() for li in page.select("ul.messagelist li")]


def preview_frame(response) -> BeautifulSoup:
    """The participant page inside the preview's frame, parsed."""
    frame = BeautifulSoup(response.content, "html.parser").select_one(
        "iframe.questionnaire-preview-frame"
    )
    assert frame is not None, response.content.decode()[:3000]
    assert frame["sandbox"] == ["allow-same-origin"]  # no scripts, no form submission
    assert frame["title"]
    return BeautifulSoup(frame["srcdoc"], "html.parser")


def test_the_list_shows_each_versions_size_freezing_and_studies(researcher, faith):
    study_make(questionnaire=faith)

    response = researcher.get(LIST)

    assert response.status_code == 200
    row = BeautifulSoup(response.content, "html.parser").select_one("#result_list tbody tr")
    cells = [cell.get_text(strip=True) for cell in row.find_all(["th", "td"])]
    start = cells.index("faith-7")
    assert cells[start : start + 8] == [
        "faith-7",
        "1",
        "Faithfulness, helpfulness and clarity",
        "3",
        "7",
        "",
        "1",
        "Preview faith-7 v1",
    ]
    assert row.select_one("img[alt=False]") is not None


def test_a_questionnaire_is_added_from_toml_text(researcher):
    response = researcher.post(ADD, {"toml": FAITH_7})

    assert response.status_code == 302
    stored = Questionnaire.objects.get()
    assert (stored.name, stored.version) == ("faith-7", 1)
    assert stored.document == questionnaire_parse(FAITH_7)


def test_a_questionnaire_is_added_from_an_uploaded_json_file(researcher):
    upload = SimpleUploadedFile("plain.json", PLAIN_5.model_dump_json().encode())

    response = researcher.post(ADD, {"toml": "", "upload": upload})

    assert response.status_code == 302
    assert Questionnaire.objects.get().document == PLAIN_5


def test_the_change_form_is_prefilled_with_the_versions_toml(researcher, faith):
    page = BeautifulSoup(researcher.get(change_url(faith)).content, "html.parser")

    text = page.select_one("textarea[name=toml]").get_text()
    assert questionnaire_parse(text) == faith.document
    assert text.strip() == questionnaire_toml(faith.document).strip()


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_a_bad_document_gets_the_formats_message_and_nothing_is_stored(researcher, case):
    text, message = BAD_FILES[case]

    response = researcher.post(ADD, {"toml": text})

    assert response.status_code == 200
    errors = BeautifulSoup(response.content, "html.parser").select(".errorlist li")
    assert any(__import__("re").search(message, e.get_text()) for e in errors), errors
    assert not Questionnaire.objects.exists()


def test_a_bad_uploaded_file_is_explained_and_nothing_is_stored(researcher):
    upload = SimpleUploadedFile("bad.json", b'{"name": "bad",\n "scale": }')

    response = researcher.post(ADD, {"toml": "", "upload": upload})

    assert response.status_code == 200
    assert "bad.json: line 2: not valid JSON" in text_of(response)
    assert not Questionnaire.objects.exists()


def test_an_unfrozen_version_is_changed_in_place(researcher, faith):
    edited = FAITH_7.replace("clearly written", "clear")

    response = researcher.post(change_url(faith), {"toml": edited})

    assert response.status_code == 302
    assert Questionnaire.objects.count() == 1
    faith.refresh_from_db()
    assert faith.document.dimensions[2].statement == "The explanation is clear."


def test_the_document_may_not_rename_the_version(researcher, faith):
    response = researcher.post(change_url(faith), {"toml": FAITH_7.replace("faith-7", "other")})

    assert response.status_code == 200
    assert "The document is named 'other', but this is questionnaire 'faith-7'" in text_of(response)
    assert list(Questionnaire.objects.values_list("name", flat=True)) == ["faith-7"]


def test_a_frozen_version_is_never_changed_and_is_saved_as_a_new_version(researcher, faith):
    study = study_make(questionnaire=faith)
    participant_start(study=study, prolific_pid="P1", rng=random.Random(1))
    faith.refresh_from_db()
    frozen_at = faith.frozen_at
    edited = FAITH_7.replace("clearly written", "clear")
    page = text_of(researcher.get(change_url(faith)))
    assert 'name="_saveasnew_version"' in page

    refused = researcher.post(change_url(faith), {"toml": edited, "_save": "Save"})

    assert refused.status_code == 200
    assert "Version 1 of 'faith-7' is frozen" in text_of(refused)
    assert "A changed document needs a new version" in text_of(refused)
    assert Questionnaire.objects.count() == 1

    saved = researcher.post(
        change_url(faith),
        {"toml": edited, "_saveasnew_version": "Save as new version"},
        follow=True,
    )

    second = Questionnaire.objects.get(name="faith-7", version=2)
    assert saved.redirect_chain[-1][0] == change_url(second)
    assert any("Saved as faith-7 v2: version 1 is frozen" in m for m in page_messages(saved))
    assert second.document.dimensions[2].statement == "The explanation is clear."
    faith.refresh_from_db()
    assert (faith.document, faith.frozen_at) == (questionnaire_parse(FAITH_7), frozen_at)
    study.refresh_from_db()
    assert study.questionnaire_id == faith.pk


def test_saving_an_unchanged_frozen_version_changes_nothing(researcher, faith):
    study = study_make(questionnaire=faith)
    participant_start(study=study, prolific_pid="P1", rng=random.Random(1))

    response = researcher.post(change_url(faith), {"toml": FAITH_7}, follow=True)

    assert any("Nothing changed" in m for m in page_messages(response))
    assert Questionnaire.objects.count() == 1


def test_the_preview_page_draws_the_participants_item_page(researcher, faith):
    response = researcher.get(reverse("admin:studyapp_questionnaire_preview", args=[faith.pk]))

    assert response.status_code == 200
    page = preview_frame(response)
    legends = [legend.get_text(strip=True) for legend in page.select("fieldset.likert legend")]
    assert legends == [d.statement for d in faith.document.dimensions]
    radios = page.select("fieldset#row-faithfulness input[type=radio]")
    assert [r["value"] for r in radios] == [str(n) for n in range(1, 8)]
    options = [o.get_text(" ", strip=True) for o in page.select("fieldset#row-faithfulness label")]
    assert len(options) == 7
    assert "Not at all" in options[0]
    assert "Completely" in options[-1]
    assert page.select_one("blockquote.explanation").get_text(strip=True)
    assert "Item 1 of 12" in page.get_text()


def test_the_change_form_has_the_htmx_preview_panel(researcher, faith):
    page = BeautifulSoup(researcher.get(change_url(faith)).content, "html.parser")

    button = page.select_one("button[name=_preview]")
    assert button["hx-post"] == button["formaction"] == PREVIEW_TEXT
    assert button["hx-target"] == "#questionnaire-preview"
    assert page.select_one("#questionnaire-preview iframe.questionnaire-preview-frame")
    assert page.select_one('script[src$="vendor/htmx.min.js"]') is not None
    assert not [s for s in page.find_all("script") if s.string and s.string.strip()]


def test_the_preview_panel_follows_the_posted_text_for_htmx(researcher):
    seven = FAITH_7.replace('"Not at all"', '"Never"')

    response = researcher.post(PREVIEW_TEXT, {"toml": seven}, HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert b"<html" not in response.content[:200]
    page = preview_frame(response)
    assert page.select("fieldset#row-clarity .likert-text")[0].get_text(strip=True) == "Never"
    assert not Questionnaire.objects.exists()


def test_the_preview_of_bad_text_names_the_problem(researcher):
    text, _message = BAD_FILES["duplicate key"]

    response = researcher.post(PREVIEW_TEXT, {"toml": text}, HTTP_HX_REQUEST="true")

    assert "the key 'clarity' is used more than once" in text_of(response)
    assert b"iframe" not in response.content


def test_without_javascript_the_preview_button_shows_a_whole_page(researcher):
    response = researcher.post(PREVIEW_TEXT, {"toml": FAITH_7})

    assert b'<div id="content-main">' in response.content
    assert "Your text has not been saved" in text_of(response)
    preview_frame(response)


def test_a_researcher_who_may_only_view_sees_the_document_read_only(faith):
    from django.contrib.auth.models import Permission, User

    viewer = User.objects.create_user(username="viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_questionnaire"))
    client = client_for("anonymous")
    client.force_login(viewer)

    page = client.get(change_url(faith))

    assert page.status_code == 200
    assert b'name="toml"' not in page.content
    assert "faithfulness" in text_of(page)
    assert (
        client.post(change_url(faith), {"toml": FAITH_7.replace("clearly", "x")}).status_code == 403
    )
    assert client.get(ADD).status_code == 403
    assert (
        client.get(reverse("admin:studyapp_questionnaire_preview", args=[faith.pk])).status_code
        == 200
    )
    faith.refresh_from_db()
    assert faith.document == questionnaire_parse(FAITH_7)


def test_staff_without_the_permission_cannot_preview(faith):
    client = client_for("staff")
    url = reverse("admin:studyapp_questionnaire_preview", args=[faith.pk])
    assert client.get(url).status_code == 403
    assert client.post(PREVIEW_TEXT, {"toml": FAITH_7}).status_code == 403


# ---- the study's questionnaire picker ------------------------------------------------------


def test_the_study_picker_sets_the_questionnaire_before_anyone_started(researcher, faith):
    study = study_make()
    url = reverse("admin:studyapp_study_change", args=[study.pk])
    data = change_form_data(researcher, url)
    assert data["questionnaire_choice"] == ""
    data["questionnaire_choice"] = str(faith.pk)

    response = researcher.post(url, data)

    assert response.status_code == 302, response.content.decode()[:2000]
    study.refresh_from_db()
    assert study.questionnaire_id == faith.pk


def test_the_study_picker_is_refused_with_the_services_message_once_started(researcher, faith):
    study = study_make()
    participant_start(study=study, prolific_pid="P1", rng=random.Random(1))
    url = reverse("admin:studyapp_study_change", args=[study.pk])
    data = change_form_data(researcher, url)
    data["questionnaire_choice"] = str(faith.pk)

    response = researcher.post(url, data)

    assert response.status_code == 200
    assert (
        "study 'pilot' already has participants; its questionnaire (plain-5 v1) can no longer"
        in (text_of(response))
    )
    study.refresh_from_db()
    assert study.questionnaire is not None
    assert study.questionnaire.name == "plain-5"


def test_the_upload_form_takes_a_questionnaire(researcher, faith):
    from tests.studyapp.participant_pool import explanation_lines

    upload = SimpleUploadedFile("e.jsonl", "\n".join(explanation_lines()).encode())
    response = researcher.post(
        reverse("admin:studyapp_study_upload"),
        {"slug": "cqa", "explanations": upload, "questionnaire": str(faith.pk)},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert Study.objects.get(slug="cqa").questionnaire_id == faith.pk
