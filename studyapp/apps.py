from __future__ import annotations

from django.apps import AppConfig


class StudyappConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "studyapp"
    verbose_name = "Explanation studies"

    def ready(self) -> None:
        # The deployment checks register themselves on import.
        from config import checks  # noqa: F401
