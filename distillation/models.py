"""The database record of each ``run_distillation`` invocation, shown in the admin."""

from __future__ import annotations

from django.db import models


class DistillationRun(models.Model):
    """One invocation of ``run_distillation``: its configuration, progress and results.

    The run's files live in ``output_dir``; rerunning a configuration resumes in the same
    folder and adds a new record, so the table is the history of what was run when.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    name = models.CharField(max_length=100, help_text="[run] name of the configuration")
    config_path = models.CharField(max_length=500)
    config = models.JSONField(help_text="the configuration as read from the file")
    stages = models.JSONField(default=list, help_text="the stages requested")
    output_dir = models.CharField(max_length=500)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    metrics = models.JSONField(
        default=dict, blank=True, help_text="accuracy table, stages run and notes"
    )
    error = models.TextField(blank=True)
    study_slug = models.CharField(max_length=100, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-started_at", "-id")
        indexes = [models.Index(fields=("name", "-started_at"))]

    def __str__(self) -> str:
        return (
            f"{self.name} ({self.get_status_display().lower()}, {self.started_at:%Y-%m-%d %H:%M})"
        )
