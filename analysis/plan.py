"""Analysis plans: every analytic choice of a ratings analysis, named in one TOML file.

A plan is what a study pre-registers: which participants are excluded, how outliers are
treated and where, which tests, post-hoc comparisons and effect sizes are reported, how the
regression is specified, and how the accuracy of the distillation runs is analysed. Two
plans ship with the package (``PLAN_NAMES``): ``paper`` repeats the published analysis of
the study this platform reproduces, ``standard`` is the stricter analysis recommended for new
studies. Keys a plan file leaves out take the ``standard`` values, and the report lists the
resolved settings in full, so nothing is decided out of sight.

The plan is identified by the SHA-256 of its TOML text (UTF-8), the value ``sha256sum``
prints for the file. Options given on the command line override single settings; each
override that changes a value is a deviation from the plan (:func:`plan_override`).
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from analysis.errors import AnalysisError
from studyformats.config_messages import validation_message

Analysis = Literal["descriptives", "tests", "regression", "reliability"]
PosthocTest = Literal["tukey", "dunn"]
Correction = Literal["bonferroni", "holm"]

PLAN_NAMES = ("paper", "standard")
ANALYSES: tuple[Analysis, ...] = ("descriptives", "tests", "regression", "reliability")
POSTHOC_TESTS: tuple[PosthocTest, ...] = ("tukey", "dunn")
CORRECTIONS: tuple[Correction, ...] = ("bonferroni", "holm")
SE_KINDS = ("classical", "HC3", "cluster")
# The reference condition "auto": the counterfactual-only model ("CF:..."), else the first.
REFERENCE_AUTO = "auto"


def _no_repeats(values: tuple[str, ...], key: str) -> None:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{key} names {', '.join(map(repr, repeated))} more than once")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class ExclusionSettings(_Section):
    """Which participants are left out before any analysis; each rule on or off."""

    researcher: bool = True
    attention: bool = True
    attention_fail_threshold: int = Field(default=2, ge=1)
    straight_lining: bool = True
    too_fast: bool = False
    min_seconds_per_item: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _seconds_given(self) -> ExclusionSettings:
        if self.too_fast and self.min_seconds_per_item is None:
            raise ValueError(
                "exclusions.too_fast = true needs exclusions.min_seconds_per_item "
                "(seconds per item, a number ≥ 0)"
            )
        return self


class OutlierSettings(_Section):
    """The 1.5 × IQR rule on quality within each condition, and the analyses it applies to.

    A rated item is an outlier when its quality lies strictly below Q1 − k·IQR or strictly
    above Q3 + k·IQR of its condition, with type-7 quantiles (R's and numpy's default).
    """

    enabled: bool = False
    multiplier: float = Field(default=1.5, gt=0)
    applies_to: tuple[Analysis, ...] = ANALYSES

    @model_validator(mode="after")
    def _distinct(self) -> OutlierSettings:
        _no_repeats(self.applies_to, "outliers.applies_to")
        if self.enabled and not self.applies_to:
            raise ValueError(
                "outliers.enabled = true needs outliers.applies_to to name at least one of: "
                + ", ".join(repr(a) for a in ANALYSES)
            )
        return self


class DifferenceSettings(_Section):
    """Tests of differences between conditions, run for every dimension and quality."""

    alpha: float = Field(default=0.05, gt=0, lt=1)
    anova: bool = True
    kruskal: bool = True
    assumption_checks: bool = True
    posthoc: tuple[PosthocTest, ...] = POSTHOC_TESTS
    corrections: tuple[Correction, ...] = CORRECTIONS
    posthoc_when: Literal["always", "significant"] = "always"

    @model_validator(mode="after")
    def _consistent(self) -> DifferenceSettings:
        _no_repeats(self.posthoc, "tests.posthoc")
        _no_repeats(self.corrections, "tests.corrections")
        if "dunn" in self.posthoc and not self.corrections:
            raise ValueError(
                "tests.posthoc includes 'dunn', which needs tests.corrections to name at "
                "least one of: 'bonferroni', 'holm'"
            )
        if self.posthoc_when == "significant":
            for test, omnibus in (("tukey", "anova"), ("dunn", "kruskal")):
                if test in self.posthoc and not getattr(self, omnibus):
                    raise ValueError(
                        f"tests.posthoc_when = 'significant' runs {test!r} only after a "
                        f"significant {omnibus} test, so it needs tests.{omnibus} = true"
                    )
        return self


class EffectSizeSettings(_Section):
    """Effect sizes: η² with the ANOVA, ε² with Kruskal–Wallis, Vargha–Delaney A per pair."""

    eta_sq: bool = True
    epsilon_sq: bool = True
    vargha_delaney: bool = True


class RegressionSettings(_Section):
    """Regression of quality on condition, explanation length and covariates."""

    reference: str = Field(default=REFERENCE_AUTO, min_length=1)
    length: Literal["words", "chars"] = "words"
    covariates: tuple[str, ...] = ()
    se: Literal["classical", "HC3", "cluster"] = "cluster"
    # Cluster-robust standard errors are unreliable with few clusters (participants); below
    # ``min_clusters`` the OLS uses ``se_fallback`` instead, and the report says so.
    min_clusters: int = Field(default=30, ge=2)
    se_fallback: Literal["classical", "HC3"] = "HC3"
    ordinal: bool = True
    mixed: bool = True

    @model_validator(mode="after")
    def _distinct(self) -> RegressionSettings:
        _no_repeats(self.covariates, "regression.covariates")
        return self


class ReliabilitySettings(_Section):
    """Internal consistency of the rating scale: α, ω, loadings and correlations."""

    enabled: bool = True


class AccuracySettings(_Section):
    """The method × size analysis of the distillation runs' test accuracy."""

    methods: tuple[str, ...] = ()
    scale: Literal["percent", "as_recorded"] = "as_recorded"
    outliers: bool = False
    outlier_multiplier: float = Field(default=1.5, gt=0)
    interaction: bool = True

    @model_validator(mode="after")
    def _distinct(self) -> AccuracySettings:
        _no_repeats(tuple(m.casefold() for m in self.methods), "accuracy.methods")
        return self


SECTIONS: dict[str, type[_Section]] = {
    "exclusions": ExclusionSettings,
    "outliers": OutlierSettings,
    "tests": DifferenceSettings,
    "effect_sizes": EffectSizeSettings,
    "regression": RegressionSettings,
    "reliability": ReliabilitySettings,
    "accuracy": AccuracySettings,
}


class PlanFile(_Section):
    """The keys of a plan's TOML file."""

    name: str | None = Field(default=None, min_length=1)
    description: str = ""
    exclusions: ExclusionSettings = ExclusionSettings()
    outliers: OutlierSettings = OutlierSettings()
    tests: DifferenceSettings = DifferenceSettings()
    effect_sizes: EffectSizeSettings = EffectSizeSettings()
    regression: RegressionSettings = RegressionSettings()
    reliability: ReliabilitySettings = ReliabilitySettings()
    accuracy: AccuracySettings = AccuracySettings()
    reasons: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _reasons_name_settings(self) -> PlanFile:
        known = [key for key, _ in _settings_flat(self)]
        for key in self.reasons:
            if key not in known:
                raise ValueError(
                    f"reasons names {key!r}, which is not a setting; settings are: "
                    + ", ".join(known)
                )
        return self


class AnalysisPlan(PlanFile):
    """A parsed plan: its settings, its name, the TOML text it came from and that text's hash.

    Examples
    --------
    >>> plan = plan_load("paper")
    >>> plan.name, plan.tests.posthoc, plan.regression.length
    ('paper', ('dunn',), 'chars')
    >>> len(plan.sha256)
    64
    """

    name: str
    text: str
    sha256: str

    def settings(self) -> dict[str, dict[str, Any]]:
        """The settings as plain data, one dict per section (JSON-ready)."""
        return {section: _plain(getattr(self, section).model_dump()) for section in SECTIONS}

    def settings_flat(self) -> list[tuple[str, Any]]:
        """``(section.key, value)`` for every setting, in file order."""
        return [(key, _plain(value)) for key, value in _settings_flat(self)]


@dataclass(frozen=True)
class Deviation:
    """A setting that an option changed: what the plan says and what the analysis used."""

    setting: str
    plan: Any
    used: Any
    option: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "setting": self.setting,
            "plan": self.plan,
            "used": self.used,
            "option": self.option,
        }


def plan_parse(text: str, *, source: str = "plan") -> AnalysisPlan:
    """Parse a plan's TOML text.

    Parameters
    ----------
    text : str
        The TOML source. Keys left out take the ``standard`` plan's values.
    source : str
        Where the text came from, used in messages; a plan without a ``name`` key is named
        after it (the file's stem).

    Raises
    ------
    AnalysisError
        One line naming the key and its accepted values: TOML syntax (with its line),
        an unknown key, a wrong type or a value out of range.

    Examples
    --------
    >>> plan_parse('[regression]\\nse = "HC3"').regression.se
    'HC3'
    >>> plan_parse('[regression]\\nse = "robust"')
    Traceback (most recent call last):
    ...
    analysis.errors.AnalysisError: plan: regression.se must be one of 'classical', 'HC3', 'cluster'; got 'robust'
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AnalysisError(f"plan{_where(source)} is not valid TOML: {exc}") from None
    try:
        parsed = PlanFile.model_validate(_frozen(document))
    except ValidationError as exc:
        raise AnalysisError(f"plan{_where(source)}: {validation_message(exc, PlanFile)}") from None
    fields = {name: getattr(parsed, name) for name in PlanFile.model_fields}
    fields["name"] = parsed.name or Path(source).stem
    return AnalysisPlan(
        **fields, text=text, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest()
    )


def _where(source: str) -> str:
    return "" if source == "plan" else f" {source}"


def plan_load(spec: str | Path) -> AnalysisPlan:
    """A shipped plan by name (``paper``, ``standard``) or a plan file by path.

    Examples
    --------
    >>> plan_load("standard").regression.se
    'cluster'
    """
    if isinstance(spec, str) and spec in PLAN_NAMES:
        text = (resources.files("analysis") / "plans" / f"{spec}.toml").read_text(encoding="utf-8")
        return plan_parse(text, source=spec)
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AnalysisError(
            f"plan {str(spec)!r} is neither a shipped plan ({', '.join(PLAN_NAMES)}) "
            "nor an existing TOML file"
        ) from None
    except IsADirectoryError:
        raise AnalysisError(f"plan {path} is a directory, not a TOML file") from None
    except UnicodeDecodeError:
        raise AnalysisError(f"plan {path} is not UTF-8 text") from None
    except OSError as exc:
        raise AnalysisError(f"cannot read plan {path}: {exc.strerror or exc}") from None
    return plan_parse(text, source=str(path))


# Each option of report_write and the command line, with the settings it sets.
OPTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "reference": (("regression", "reference"),),
    "drop_outliers": (("outliers", "enabled"),),
    "covariates": (("regression", "covariates"),),
    "min_seconds_per_item": (
        ("exclusions", "too_fast"),
        ("exclusions", "min_seconds_per_item"),
    ),
    "attention_fail_threshold": (
        ("exclusions", "attention"),
        ("exclusions", "attention_fail_threshold"),
    ),
}


def plan_override(plan: AnalysisPlan, **options: Any) -> tuple[AnalysisPlan, list[Deviation]]:
    """Apply options that override single settings; list those that change the plan.

    An option that is None is not given. ``min_seconds_per_item`` and
    ``attention_fail_threshold`` also switch their exclusion rule on.

    Returns
    -------
    (AnalysisPlan, list of Deviation)
        The plan with the options applied (same name, text and hash) and one deviation per
        setting whose value changed.

    Raises
    ------
    AnalysisError
        An unknown option or a value the setting does not accept.

    Examples
    --------
    >>> used, deviations = plan_override(plan_load("paper"), attention_fail_threshold=2)
    >>> used.exclusions.attention, [d.setting for d in deviations]
    (True, ['exclusions.attention'])
    """
    updates: dict[str, dict[str, Any]] = {}
    origin: dict[tuple[str, str], str] = {}
    for option, value in options.items():
        if option not in OPTIONS:
            raise AnalysisError(
                f"unknown plan option {option!r}; options are: {', '.join(OPTIONS)}"
            )
        if value is None:
            continue
        for section, key in OPTIONS[option]:
            if key in ("too_fast", "attention"):
                setting: Any = True
            elif key == "covariates":
                setting = tuple(value)
            else:
                setting = value
            updates.setdefault(section, {})[key] = setting
            origin[(section, key)] = option
    if not updates:
        return plan, []
    sections: dict[str, Any] = {}
    for section, changed in updates.items():
        current = getattr(plan, section)
        try:
            sections[section] = type(current).model_validate({**current.model_dump(), **changed})
        except ValidationError as exc:
            raise AnalysisError(validation_message(exc, type(current), prefix=section)) from None
    deviations = [
        Deviation(
            setting=f"{section}.{key}",
            plan=_plain(getattr(getattr(plan, section), key)),
            used=_plain(getattr(sections[section], key)),
            option=origin[(section, key)],
        )
        for section, changed in updates.items()
        for key in changed
        if getattr(getattr(plan, section), key) != getattr(sections[section], key)
    ]
    return plan.model_copy(update=sections), deviations


# -- helpers -----------------------------------------------------------------------------------
def _frozen(value: Any) -> Any:
    # TOML arrays arrive as lists; the settings hold tuples so that a plan cannot change.
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _settings_flat(plan: PlanFile) -> Iterator[tuple[str, Any]]:
    for section in SECTIONS:
        values = getattr(plan, section)
        for key in type(values).model_fields:
            yield f"{section}.{key}", getattr(values, key)
