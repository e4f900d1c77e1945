"""Prepare the demo: a researcher login (printed once)."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_USERNAME = "researcher"


def researcher_ensure(*, username: str = DEMO_USERNAME) -> str | None:
    """Create a staff researcher account if no superuser exists; return its new password."""
    user_model = get_user_model()
    if user_model.objects.filter(is_superuser=True).exists():
        return None
    password = secrets.token_urlsafe(12)
    user_model.objects.create_superuser(username=username, email="", password=password)
    return password


class Command(BaseCommand):
    help = "Create the demo researcher login if none exists and print it."

    def handle(self, *args: Any, **options: Any) -> None:
        password = researcher_ensure()
        if password is None:
            self.stdout.write("A researcher login already exists; use it at /admin/.")
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Researcher login created (shown once): user '{DEMO_USERNAME}', "
                    f"password '{password}'"
                )
            )
