from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator

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
