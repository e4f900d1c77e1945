"""The run records in the admin: read-only pages with the results as tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from distillation.models import DistillationRun

EMPTY = "–"


def settings_flatten(table: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """A nested configuration as ``(dotted key, value)`` rows, in the file's order.

    Examples
    --------
    >>> settings_flatten({"run": {"name": "demo"}, "students": [{"method": "mt"}], "x": [1, 2]})
    [('run.name', 'demo'), ('students[1].method', 'mt'), ('x', '1, 2')]
    """
    rows: list[tuple[str, str]] = []
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(settings_flatten(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for number, item in enumerate(value, start=1):
                rows.extend(settings_flatten(item, f"{name}[{number}]."))
        elif isinstance(value, list):
            rows.append((name, ", ".join(str(v) for v in value)))
        elif isinstance(value, bool):
            rows.append((name, "true" if value else "false"))
        else:
            rows.append((name, EMPTY if value is None or value == "" else str(value)))
    return rows


def table_html(headers: Iterable[str], rows: Iterable[Iterable[Any]]) -> SafeString:
    """An escaped HTML table; the admin's own styles give it lines and spacing."""
    head = format_html_join("", '<th scope="col">{}</th>', ((h,) for h in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    return format_html(
        '<table class="run-table"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, body
    )


def seconds_text(seconds: float | None) -> str:
    """Seconds as people read them: ``42.0 s``, ``3 min 05 s``, ``2 h 01 min``."""
    if seconds is None:
        return EMPTY
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@admin.register(DistillationRun)
class DistillationRunAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "started_at", "finished_at", "study_slug", "output_dir")
    list_filter = ("status", "name")
    search_fields = ("name", "output_dir", "study_slug")
    date_hierarchy = "started_at"
    # Runs are written by the command only; the admin is a window onto them.
    _RECORD = (
        "name",
        "status",
        "started_at",
        "finished_at",
        "duration",
        "output_dir",
        "config_path",
        "study_slug",
        "error",
    )
    _RESULTS = ("accuracy", "stage_table", "notes")
    readonly_fields = (*_RECORD, *_RESULTS, "config_table")
    fieldsets = (
        (None, {"fields": _RECORD}),
        ("Results", {"fields": _RESULTS}),
        ("Configuration", {"fields": ("config_table",)}),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="duration")
    def duration(self, run: DistillationRun) -> str:
        if run.finished_at is None:
            return EMPTY
        return seconds_text((run.finished_at - run.started_at).total_seconds())

    @admin.display(description="test accuracy per student")
    def accuracy(self, run: DistillationRun) -> SafeString | str:
        rows = (run.metrics or {}).get("accuracy") or []
        if not rows:
            return "none recorded"
        return table_html(
            ("model", "size", "method", "data variant", "seeds", "accuracy (mean)", "sd"),
            (
                (
                    row.get("model", EMPTY),
                    row.get("size", EMPTY),
                    row.get("method", EMPTY),
                    row.get("data_variant", EMPTY),
                    row.get("seeds", EMPTY),
                    _number(row.get("accuracy_mean")),
                    _number(row.get("accuracy_sd")),
                )
                for row in rows
            ),
        )

    @admin.display(description="stages")
    def stage_table(self, run: DistillationRun) -> SafeString | str:
        metrics = run.metrics or {}
        ran = metrics.get("stages_run") or []
        skipped = set(metrics.get("stages_skipped") or [])
        seconds = metrics.get("stage_seconds") or {}
        requested = run.stages or [*ran, *skipped]
        if not requested:
            return EMPTY
        rows = []
        for stage in requested:
            if stage in ran:
                outcome = "ran"
            elif stage in skipped:
                outcome = "skipped: already complete"
            else:
                outcome = "not reached"
            rows.append((stage, outcome, seconds_text(seconds.get(stage))))
        return table_html(("stage", "outcome", "time"), rows)

    @admin.display(description="notes")
    def notes(self, run: DistillationRun) -> SafeString | str:
        notes = (run.metrics or {}).get("notes") or []
        if not notes:
            return EMPTY
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((n,) for n in notes))
        )

    @admin.display(description="configuration")
    def config_table(self, run: DistillationRun) -> SafeString | str:
        rows = settings_flatten(run.config) if isinstance(run.config, Mapping) else []
        if not rows:
            return EMPTY
        return table_html(("setting", "value"), rows)


def _number(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.3f}"
    return EMPTY
