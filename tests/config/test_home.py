"""The site root and /favicon.ico: what a new browser asks for first."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_root_says_what_the_site_is_and_links_the_admin_and_api_docs(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    page = BeautifulSoup(response.content, "html.parser")
    assert page.h1 is not None
    assert page.h1.get_text(strip=True) == "Explanation study platform"
    links = {a["href"]: a.get_text(strip=True) for a in page.select("main a")}
    assert links == {"/admin/": "Admin", "/api/docs/": "API documentation"}
    assert "default-src 'self'" in response["Content-Security-Policy"]


def test_the_root_tells_participants_nothing_about_their_study(client: Client) -> None:
    text = BeautifulSoup(client.get("/").content, "html.parser").get_text(" ").lower()
    for phrase in ("completion code", "prolific", "payment", "consent"):
        assert phrase not in text


def test_the_root_refuses_a_post(client: Client) -> None:
    assert client.post("/").status_code == 405


def test_favicon_is_an_icon_cached_for_a_day(client: Client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"  # the ICO file signature
    assert "max-age=86400" in response["Cache-Control"]


def test_every_page_names_the_icon(client: Client) -> None:
    page = BeautifulSoup(client.get("/").content, "html.parser")
    icon = page.find("link", rel="icon")
    assert icon is not None
    assert icon["href"] == "/favicon.ico"
