"""A study's analysis plan: choosing one, and reading back the one the study registered.

A plan is a shipped one (``paper``, ``standard``) or TOML text (a file or pasted). The text
is stored whole on the study, so a study carries its own plan even if the shipped files
change later. Every reader here raises ``analysis.errors.AnalysisError`` with the plan
module's one-line message when a plan cannot be used.
"""

from __future__ import annotations

from django.core.files.uploadedfile import UploadedFile

from analysis.errors import AnalysisError
from analysis.plan import PLAN_NAMES, AnalysisPlan, plan_load, plan_parse
from studyapp.models import Study

# What a study without a registered plan is analysed under.
PLAN_DEFAULT = "standard"
# A plan is a page of TOML; this stops a wrong file from filling memory.
PLAN_MAX_BYTES = 256 * 1024


def plan_shipped(name: str) -> AnalysisPlan:
    """One of the plans shipped with the analysis (never a path: safe for web input)."""
    if name not in PLAN_NAMES:
        raise AnalysisError(
            f"plan: unknown plan {name!r}; the shipped plans are {', '.join(PLAN_NAMES)}"
        )
    return plan_load(name)


def plan_from_text(text: str) -> AnalysisPlan:
    """A plan from pasted TOML text; one without a ``name`` key is named "custom"."""
    return plan_parse(text, source="custom")


def plan_from_upload(upload: UploadedFile) -> AnalysisPlan:
    """A plan from an uploaded TOML file (UTF-8; a leading byte-order mark is dropped)."""
    name = upload.name or "plan.toml"
    if upload.size is not None and upload.size > PLAN_MAX_BYTES:
        raise AnalysisError(
            f"{name}: the file is {upload.size // 1024} KB; a plan may be at most "
            f"{PLAN_MAX_BYTES // 1024} KB"
        )
    data = upload.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise AnalysisError(f"{name}: line {line}: the file is not UTF-8 text") from None
    return plan_parse(text, source=name)


def study_plan(study: Study) -> AnalysisPlan:
    """The plan the study registered, or the default plan when it registered none."""
    if not study.plan_registered:
        return plan_load(PLAN_DEFAULT)
    try:
        # Named as when it was registered, should its text carry no name of its own.
        plan = plan_parse(study.plan_text, source=f"{study.plan_name}.toml")
    except AnalysisError as exc:
        raise AnalysisError(
            f"the plan registered for study '{study.slug}' cannot be read by this version "
            f"of the analysis: {exc}"
        ) from None
    return plan
