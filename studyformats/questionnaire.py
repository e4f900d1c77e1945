"""The questionnaire file: the dimensions participants rate, the scale and the attention checks.

A researcher writes it in TOML or JSON; ``studyapp`` stores it as a versioned questionnaire and
renders its pages from it; the ratings export has one column per dimension key, and the
analysis takes the dimensions from that file. The format is documented in
docs/questionnaires.md. Bad input raises ``QuestionnaireError`` with one line that names the key
(or the line of a syntax error) and what it accepts.

Examples
--------
>>> q = questionnaire_parse('''
... name = "faith-7"
... [scale]
... points = 7
... labels = {"1" = "Not at all", "4" = "Somewhat", "7" = "Completely"}
... [[dimensions]]
... key = "faithfulness"
... label = "Faithfulness"
... statement = "The explanation reflects how the answer was reached."
... ''', source="faith.toml")
>>> q.keys, q.scale.points, q.scale.label_of(4), q.scale.label_of(2)
(('faithfulness',), 7, 'Somewhat', '')
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from studyformats.config_messages import validation_message
from studyformats.ratings import RESERVED_COLUMNS

SCALE_MIN_POINTS, SCALE_MAX_POINTS = 2, 11
DIMENSIONS_MAX = 20
KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}")
# A dimension key becomes a CSV column and a name in the analysis: it may not take the name
# of another column of the ratings file, nor of the mean the analysis adds.
RESERVED_KEYS = RESERVED_COLUMNS
CHECK_LABEL = "{label}"


class QuestionnaireError(ValueError):
    """A questionnaire file that cannot be used; the message names the key or line."""


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DimensionSpec(_Table):
    key: Annotated[
        str,
        Field(
            pattern=r"^[a-z][a-z0-9_]{0,39}$",  # pydantic's regex: "$" is the very end
            description="a slug: a lowercase letter, then up to 39 of a-z, 0-9 or '_'",
        ),
    ]
    label: Annotated[str, Field(min_length=1, max_length=60)]
    statement: Annotated[str, Field(min_length=1, max_length=500)]
    definition: Annotated[str, Field(max_length=1000)] = ""
    source: Annotated[str, Field(max_length=300)] = ""

    @field_validator("label", "statement", "definition", "source")
    @classmethod
    def _stripped(cls, text: str) -> str:
        return text.strip()


class ScaleSpec(_Table):
    points: Annotated[int, Field(ge=SCALE_MIN_POINTS, le=SCALE_MAX_POINTS)]
    # Every point's label in order, or {"1": ..., "7": ...}: every point, or the two ends
    # (and the middle, on an odd scale).
    labels: list[str] | dict[str, str]

    @model_validator(mode="after")
    def _labels_fit(self) -> ScaleSpec:
        points = self.points
        if isinstance(self.labels, list):
            if len(self.labels) != points:
                raise ValueError(
                    f"scale.labels has {len(self.labels)} labels for {points} points; give one "
                    "a point, or a table of the ends (and the middle)"
                )
            named = dict(enumerate(self.labels, start=1))
        else:
            named = {}
            for key, label in self.labels.items():
                if not key.isdigit() or not 1 <= int(key) <= points:
                    raise ValueError(f"scale.labels has the key '{key}'; points are 1 to {points}")
                named[int(key)] = label
            middle = (points + 1) // 2 if points % 2 else None
            allowed = [set(range(1, points + 1)), {1, points}]
            if middle is not None:
                allowed.append({1, middle, points})
            if set(named) not in allowed:
                ends = f"1 and {points}" + (f" (and {middle})" if middle else "")
                raise ValueError(
                    f"scale.labels must label every point 1 to {points}, or the ends {ends}"
                )
        if any(not label.strip() for label in named.values()):
            raise ValueError("scale.labels may not be empty")
        if len({label.strip() for label in named.values()}) != len(named):
            raise ValueError("scale.labels must differ from each other")
        return self

    @property
    def named(self) -> dict[int, str]:
        """Each labelled point's label."""
        if isinstance(self.labels, list):
            return {n: label.strip() for n, label in enumerate(self.labels, start=1)}
        return {
            int(key): label.strip()
            for key, label in sorted(self.labels.items(), key=lambda kv: int(kv[0]))
        }

    def label_of(self, value: int) -> str:
        """The label of ``value``; '' for a point without one."""
        return self.named.get(value, "")

    def value_of(self, label: str) -> int | None:
        return next((n for n, text in self.named.items() if text == label), None)


class AttentionCheckSpec(_Table):
    count: Annotated[int, Field(ge=0, le=10)] = 2
    # No check before this many rated items: every check follows real work.
    first_after: Annotated[int, Field(ge=1, le=50)] = 1
    instruction: Annotated[str, Field(min_length=1, max_length=300)] = (
        "In every row below, please choose “{label}”."
    )
    # The scale labels a check may ask for; empty: any labelled point.
    labels: tuple[str, ...] = ()

    @field_validator("instruction")
    @classmethod
    def _names_the_label(cls, text: str) -> str:
        if CHECK_LABEL not in text:
            raise ValueError(f"must contain {CHECK_LABEL}, where the label to choose is shown")
        return text.strip()


class QuestionnaireFile(_Table):
    name: Annotated[
        str,
        Field(
            pattern=r"^[a-z0-9][a-z0-9-]{0,59}$",
            description="a slug: lowercase letters, digits and '-', at most 60",
        ),
    ]
    title: Annotated[str, Field(max_length=200)] = ""
    description: Annotated[str, Field(max_length=2000)] = ""
    scale: ScaleSpec
    dimensions: Annotated[tuple[DimensionSpec, ...], Field(min_length=1, max_length=DIMENSIONS_MAX)]
    attention_checks: AttentionCheckSpec = AttentionCheckSpec()

    @model_validator(mode="after")
    def _consistent(self) -> QuestionnaireFile:
        keys = [d.key for d in self.dimensions]
        for number, key in enumerate(keys, start=1):
            if key in RESERVED_KEYS:
                raise ValueError(
                    f"dimensions[{number}].key '{key}' is a column the ratings file already "
                    "has; choose another key"
                )
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"dimensions: the key '{repeated[0]}' is used more than once")
        named = self.scale.named
        for label in self.attention_checks.labels:
            if label not in named.values():
                raise ValueError(
                    f"attention_checks.labels names '{label}', which the scale lacks; its "
                    f"labels are {', '.join(repr(t) for t in named.values())}"
                )
        return self


class Questionnaire(QuestionnaireFile):
    """A validated questionnaire and the text it was read from."""

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(d.key for d in self.dimensions)

    def check_values(self) -> tuple[int, ...]:
        """The points an attention check may ask for: labelled ones, as the file allows."""
        named = self.scale.named
        wanted = self.attention_checks.labels
        return tuple(n for n, label in named.items() if not wanted or label in wanted)

    def as_data(self) -> dict[str, Any]:
        """The questionnaire as plain data (the JSON it is stored and exported as)."""
        return self.model_dump(mode="json")


def questionnaire_from_data(
    data: Mapping[str, Any], *, source: str = "questionnaire"
) -> Questionnaire:
    """A questionnaire from parsed TOML or JSON data; ``QuestionnaireError`` names the key."""
    if not isinstance(data, Mapping):
        raise QuestionnaireError(f"{source}: a questionnaire is a table (a JSON object)")
    try:
        return Questionnaire.model_validate(dict(data))
    except ValidationError as exc:
        raise QuestionnaireError(f"{source}: {validation_message(exc, Questionnaire)}") from None


def questionnaire_parse(
    text: str, *, source: str = "questionnaire", kind: str = ""
) -> Questionnaire:
    """A questionnaire from TOML or JSON text (``kind`` "toml" or "json"; "": JSON when the
    text starts with '{', TOML otherwise)."""
    kind = kind or ("json" if text.lstrip().startswith("{") else "toml")
    try:
        data = json.loads(text) if kind == "json" else tomllib.loads(text)
    except json.JSONDecodeError as exc:
        raise QuestionnaireError(
            f"{source}: line {exc.lineno}: not valid JSON ({exc.msg})"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise QuestionnaireError(f"{source}: not valid TOML ({exc})") from None
    return questionnaire_from_data(data, source=source)


def questionnaire_read(path: Path) -> Questionnaire:
    """A questionnaire file (.toml or .json)."""
    kind = {".toml": "toml", ".json": "json"}.get(path.suffix.lower())
    if kind is None:
        raise QuestionnaireError(f"{path}: a questionnaire file ends in .toml or .json")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise QuestionnaireError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise QuestionnaireError(f"{path} is not UTF-8 text") from None
    return questionnaire_parse(text, source=str(path), kind=kind)


def questionnaire_toml(questionnaire: Questionnaire) -> str:
    """The questionnaire as a TOML file that reads back to the same questionnaire."""
    data = questionnaire.as_data()

    def value(item: Any) -> str:
        if isinstance(item, str):
            return json.dumps(item, ensure_ascii=False)
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int):
            return str(item)
        if isinstance(item, list | tuple):
            return "[" + ", ".join(value(x) for x in item) + "]"
        if isinstance(item, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(v)}" for k, v in item.items()) + "}"
        raise TypeError(f"cannot write {item!r} as TOML")

    lines = [f"{key} = {value(data[key])}" for key in ("name", "title", "description")]
    for table in ("scale", "attention_checks"):
        lines += ["", f"[{table}]"] + [f"{k} = {value(v)}" for k, v in data[table].items()]
    for dimension in data["dimensions"]:
        lines += ["", "[[dimensions]]"] + [f"{k} = {value(v)}" for k, v in dimension.items()]
    return "\n".join(lines) + "\n"


PLAIN_5 = questionnaire_from_data(
    {
        "name": "plain-5",
        "title": "Explanation quality: five statements in plain words",
        "description": (
            "The project's default instrument: five statements about an explanation, each "
            "rated on a five-point agreement scale."
        ),
        "scale": {
            "points": 5,
            "labels": [
                "Strongly disagree",
                "Disagree",
                "Neither agree nor disagree",
                "Agree",
                "Strongly agree",
            ],
        },
        "dimensions": [
            {
                "key": "plausibility",
                "label": "Plausibility",
                "statement": "The explanation is plausible: its reasons could well be true.",
                "definition": (
                    "Could the reasons given be true? A plausible explanation says nothing "
                    "false or far-fetched about the world."
                ),
            },
            {
                "key": "understandability",
                "label": "Understandability",
                "statement": "The explanation is easy to understand.",
                "definition": (
                    "Is it clear and easy to read? Judge the wording, not whether you agree "
                    "with it."
                ),
            },
            {
                "key": "completeness",
                "label": "Completeness",
                "statement": (
                    "The explanation is complete: it gives everything needed to support the answer."
                ),
                "definition": (
                    "Does it give all the reasons needed to support the answer, with no "
                    "important step missing?"
                ),
            },
            {
                "key": "satisfaction",
                "label": "Satisfaction",
                "statement": "I am satisfied with this explanation of the answer.",
                "definition": (
                    "Overall, would this explanation satisfy you if you had asked why this is "
                    "the answer?"
                ),
            },
            {
                "key": "contrastiveness",
                "label": "Contrastiveness",
                "statement": (
                    "The explanation says why this answer was chosen rather than the other choices."
                ),
                "definition": (
                    "Does it say why this answer fits better than the other choices, not only "
                    "why it fits?"
                ),
            },
        ],
        "attention_checks": {
            "count": 2,
            "first_after": 1,
            "instruction": "In every row below, please choose “{label}”.",
        },
    },
    source="plain-5",
)
