from __future__ import annotations

from django.apps import AppConfig


class DistillationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "distillation"
    verbose_name = "Distillation runs"
