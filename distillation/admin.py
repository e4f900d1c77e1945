from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from distillation.models import DistillationRun


@admin.register(DistillationRun)
class DistillationRunAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "started_at", "finished_at", "study_slug", "output_dir")
    list_filter = ("status", "name")
    search_fields = ("name", "output_dir", "study_slug")
    date_hierarchy = "started_at"
    # Runs are written by the command only; the admin is a window onto them.
    readonly_fields = (
        "name",
        "config_path",
        "config",
        "stages",
        "output_dir",
        "status",
        "metrics",
        "error",
        "study_slug",
        "started_at",
        "finished_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
