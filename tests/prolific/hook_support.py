"""Posting a webhook delivery to this site as Prolific does."""

from __future__ import annotations

from typing import Any

from django.test import Client

HOOK_PATH = "/prolific/hooks/"


def hook_post(body: bytes, headers: dict[str, str]) -> Any:
    """POST ``body`` with Prolific's headers (the JSON content type is set by the client)."""
    sent = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return Client().post(HOOK_PATH, body, content_type="application/json", headers=sent)


def hook_sink(body: bytes, headers: dict[str, str]) -> int:
    """The fake Prolific's webhook receiver: this site's hook address; the status answered."""
    return int(hook_post(body, headers).status_code)
