from __future__ import annotations

import doctest
import itertools
import re

import pytest
from bs4 import BeautifulSoup, Tag
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator

from studyapp.api import reference
from studyapp.api.reference import (
    Spans,
    reference_build,
    schema_notes,
    text_blocks,
    type_spans,
)
from tests.studyapp.researcher_data import client_for

pytestmark = pytest.mark.django_db

API_PATHS = {
    "/api/studies/",
    "/api/studies/{slug}/",
    "/api/studies/{slug}/plan/",
    "/api/studies/{slug}/progress/",
    "/api/studies/{slug}/status/",
    "/api/studies/{slug}/participants/",
    "/api/studies/{slug}/ratings/",
    "/api/studies/{slug}/ratings.csv",
    "/api/studies/{slug}/questionnaire/",
    "/api/questionnaires/",
    "/api/questionnaires/{slug}/",
}


def test_the_generated_schema_is_valid_openapi_3_and_covers_every_endpoint():
    validator = pytest.importorskip("openapi_spec_validator")
    schema = SchemaGenerator().get_schema(request=None, public=True)
    validator.validate(schema)
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == API_PATHS
    create = schema["paths"]["/api/studies/"]["post"]
    assert "multipart/form-data" in create["requestBody"]["content"]
    csv_response = schema["paths"]["/api/studies/{slug}/ratings.csv"]["get"]["responses"]["200"]
    assert "text/csv" in csv_response["content"]


def test_the_schema_documents_the_analysis_plan():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    create = components["StudyCreate"]["properties"]
    plan_enum = create["plan"]["allOf"][0]["$ref"].rsplit("/", 1)[1]
    assert components[plan_enum]["enum"] == ["paper", "standard"]
    assert create["plan_file"]["type"] == create["explanations"]["type"] == "string"
    study = components["Study"]["properties"]
    assert {"plan_name", "plan_sha256", "plan_frozen", "plan_frozen_at"} <= set(study)
    plan = schema["paths"]["/api/studies/{slug}/plan/"]
    assert set(plan) == {"get", "put", "delete"}
    assert set(plan["put"]["responses"]) == {"200", "400", "409"}
    assert set(plan["put"]["requestBody"]["content"]) == {
        "application/json",
        "multipart/form-data",
    }
    assert set(components["StudyPlan"]["properties"]) == {
        "name",
        "sha256",
        "text",
        "frozen",
        "frozen_at",
    }
    assert "409" in schema["paths"]["/api/studies/"]["post"]["responses"]


def test_the_schema_documents_the_questionnaire_endpoints():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    store = schema["paths"]["/api/questionnaires/"]["post"]
    assert set(store["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert set(store["responses"]) == {"200", "201", "400"}
    detail = schema["paths"]["/api/questionnaires/{slug}/"]["get"]
    assert "version" in {parameter["name"] for parameter in detail["parameters"]}
    study = schema["paths"]["/api/studies/{slug}/questionnaire/"]
    assert set(study) == {"get", "put"}
    assert set(study["put"]["responses"]) == {"200", "400", "409"}
    components = schema["components"]["schemas"]
    assert {"name", "version", "frozen", "document"} <= set(
        components["QuestionnaireDetail"]["properties"]
    )


def test_every_operation_requires_authentication():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            schemes = {name for entry in operation["security"] for name in entry}
            assert schemes == {"tokenAuth", "cookieAuth"}, (path, method)


def test_the_schema_endpoint_serves_it_to_staff():
    response = client_for("researcher").get(reverse("api:schema"), HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert set(response.json()["paths"]) == API_PATHS


def test_the_browsable_docs_load_nothing_from_other_sites():
    response = client_for("researcher").get(reverse("api:docs"))
    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources, "the page loads no assets"
    assert not [s for s in sources if s.startswith(("http:", "https:", "//"))], sources
    assert "jsdelivr" not in html
    for source in sources:
        if source.startswith("/static/"):
            assert finders.find(source.removeprefix("/static/")), source


# The keys of an OpenAPI path item that are not operations.
PATH_ITEM_FIELDS = {"$ref", "summary", "description", "servers", "parameters"}


def _docs_page(client: Client | None = None) -> BeautifulSoup:
    response = (client or client_for("researcher")).get(reverse("api:docs"))
    assert response.status_code == 200
    return BeautifulSoup(response.content, "html.parser")


def _one(tag: Tag, selector: str) -> Tag:
    found = tag.select_one(selector)
    assert found is not None, selector
    return found


def _article(page: Tag, anchor: str) -> Tag:
    """The operation or schema whose heading has the id ``anchor``."""
    return _one(page, f"article[aria-labelledby='{anchor}']:has(> h3#{anchor})")


def test_the_docs_page_lists_every_path_and_method_of_the_schema():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    expected = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method not in PATH_ITEM_FIELDS
    }

    page = _docs_page()
    listed = {
        (
            _one(heading, ".method").get_text(strip=True),
            _one(heading, ".path").get_text(strip=True),
        )
        for heading in page.select("main article.operation h3")
    }

    assert listed == expected
    assert {path for _, path in listed} == API_PATHS


def test_the_docs_page_shows_parameters_bodies_responses_and_schema_fields():
    page = _docs_page()
    plan_put = _article(page, "op-studies_plan_update")
    text = plan_put.get_text(" ", strip=True)
    row = _one(plan_put, "table.fields tbody th").get_text(" ", strip=True)
    assert row == "slug in path required"
    assert "application/json : StudyPlanSet" in text
    assert "multipart/form-data : StudyPlanSet" in text
    statuses = [dt.get_text(strip=True) for dt in plan_put.select(".responses dt")]
    assert statuses == ["200", "400", "409"]
    assert "The study has gone live: its plan is frozen." in text

    study = _article(page, "schema-Study")
    fields = [th.get_text(" ", strip=True) for th in study.select("tbody th")]
    assert "plan_frozen_at required" in fields
    enum = _article(page, "schema-StudyStatusEnum")
    assert "one of draft , live , paused , closed" in enum.get_text(" ", strip=True)


def test_every_link_on_the_docs_page_leads_somewhere():
    client = client_for("researcher")
    page = _docs_page(client)
    ids = [tag["id"] for tag in page.find_all(id=True)]
    assert len(ids) == len(set(ids)), "duplicate ids"
    fragments = {a["href"][1:] for a in page.select("a[href^='#']")}
    assert fragments - set(ids) == set()
    for href in ("/api/schema/", "/api/schema/?format=json"):
        assert page.find("a", href=href) is not None, href
        assert client.get(href).status_code == 200, href


def test_the_docs_page_is_one_document_with_ordered_headings():
    page = _docs_page()
    assert _one(page, "html")["lang"] == "en"
    assert len(page.find_all("h1")) == 1
    levels = [int(h.name[1]) for h in page.find_all(["h1", "h2", "h3", "h4", "h5", "h6"])]
    assert all(later - earlier <= 1 for earlier, later in itertools.pairwise(levels)), levels
    assert not page.find_all("script", src=False)
    assert not page.find_all(style=True)


def test_the_docs_page_needs_the_same_login_as_the_schema():
    assert Client().get(reverse("api:docs")).status_code == 401
    assert Client().get(reverse("api:schema")).status_code == 401


def test_type_spans_names_and_links_the_types_of_a_schema():
    assert _text(type_spans({"$ref": "#/components/schemas/Study"})) == "Study"
    assert type_spans({"$ref": "#/components/schemas/Study"})[0].href == "#schema-Study"
    assert _text(type_spans({"type": "array", "items": {"$ref": "#/x/Condition"}})) == (
        "array of Condition"
    )
    assert _text(type_spans({"allOf": [{"$ref": "#/x/PlanEnum"}]})) == "PlanEnum"
    assert _text(type_spans({"oneOf": [{"type": "string"}, {"type": "integer"}]})) == (
        "string or integer"
    )
    assert _text(type_spans({"type": "object", "additionalProperties": {"type": "integer"}})) == (
        "object of names to integer"
    )
    assert _text(type_spans({"type": "number", "format": "double", "nullable": True})) == (
        "number (double) or null"
    )
    assert _text(type_spans({})) == "any value"


def test_schema_notes_say_what_a_value_may_be():
    notes = schema_notes(
        {"enum": ["a", "b"], "maxLength": 64, "pattern": "^x$", "default": False, "minimum": 1}
    )
    assert [_text(note) for note in notes] == [
        "one of a, b",
        "at least 1",
        "at most 64 characters",
        "matches ^x$",
        "default false",
    ]


def test_text_blocks_keep_paragraphs_lists_and_code():
    blocks = text_blocks("First line\nsame paragraph with ``code``.\n\n* `a` - A\n* `b` - B")
    assert [block.kind for block in blocks] == ["paragraph", "list"]
    paragraph = blocks[0].items[0]
    assert _text(paragraph) == "First line same paragraph with code."
    assert [span.text for span in paragraph if span.code] == ["code"]
    assert [_text(item) for item in blocks[1].items] == ["a - A", "b - B"]
    assert text_blocks("") == ()
    assert text_blocks(None) == ()


def test_reference_build_groups_operations_by_tag_in_schema_order():
    schema = {
        "info": {"title": "T", "version": "2"},
        "paths": {
            "/b/": {
                "delete": {"tags": ["beta"], "responses": {"204": {}}},
                "get": {"tags": ["beta"], "security": [{}], "responses": {"200": {}}},
            },
            "/a/": {"post": {"responses": {"418": {"description": "Tea."}}}},
        },
        "components": {
            "securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "X-Key"}}
        },
    }

    built = reference_build(schema)

    assert [group.name for group in built.groups] == ["beta", "other"]
    beta = built.groups[0].operations
    assert [(op.method, op.path) for op in beta] == [("get", "/b/"), ("delete", "/b/")]
    assert _text(beta[0].security) == "none"
    assert _text(beta[1].responses[0].description[0].items[0]) == "No Content"
    assert beta[0].anchor != beta[1].anchor
    assert _text(built.security[0].summary) == "the X-Key header"


def test_the_examples_in_the_reference_docstrings_hold():
    result = doctest.testmod(reference)
    assert result.attempted >= 10
    assert result.failed == 0


def _text(spans: Spans) -> str:
    return "".join(span.text for span in spans)
