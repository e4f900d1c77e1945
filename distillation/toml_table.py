"""Typed access to one table of a TOML run configuration; every error names ``table.key``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from distillation.errors import ConfigError


class TomlTable:
    """Typed access to one TOML table; every error names ``table.key``."""

    def __init__(self, section: Any, name: str) -> None:
        if not isinstance(section, Mapping):
            raise ConfigError(f"[{name}] must be a table")
        self.section = section
        self.name = name

    def only(self, *accepted: str) -> None:
        for key in self.section:
            if key not in accepted:
                raise ConfigError(
                    f"unknown key {self.name}.{key}; accepted keys: {', '.join(sorted(accepted))}"
                )

    def _value(self, key: str, default: Any, ok: bool, what: str) -> Any:
        if key not in self.section:
            return default
        if not ok:
            raise ConfigError(f"{self.name}.{key} must be {what}, got {self.section[key]!r}")
        return self.section[key]

    def string(self, key: str, default: str) -> str:
        value = self.section.get(key)
        return str(self._value(key, default, isinstance(value, str), "a string"))

    def boolean(self, key: str, default: bool) -> bool:
        value = self.section.get(key)
        return bool(self._value(key, default, isinstance(value, bool), "true or false"))

    def integer(self, key: str, default: int, *, minimum: int | None = None) -> int:
        value = self.section.get(key)
        is_int = isinstance(value, int) and not isinstance(value, bool)
        result = int(self._value(key, default, is_int, "an integer"))
        if minimum is not None and result < minimum:
            raise ConfigError(f"{self.name}.{key} must be at least {minimum}, got {result}")
        return result

    def number(self, key: str, default: float, *, positive: bool = False) -> float:
        value = self.section.get(key)
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        result = float(self._value(key, default, is_number, "a number"))
        if result < 0 or (positive and result == 0):
            raise ConfigError(
                f"{self.name}.{key} must be {'above' if positive else 'at least'} 0, got {result}"
            )
        return result

    def choice(self, key: str, accepted: tuple[str, ...], default: str | None) -> str:
        if key not in self.section and default is None:
            raise ConfigError(
                f"{self.name}.{key} is required; accepted values: {', '.join(accepted)}"
            )
        value = self.section.get(key, default)
        if value not in accepted:
            raise ConfigError(
                f"{self.name}.{key} = {value!r} is not accepted; accepted values: "
                f"{', '.join(accepted)}"
            )
        return str(value)

    def integers(self, key: str, default: list[int]) -> list[int]:
        value = self.section.get(key, default)
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise ConfigError(
                f"{self.name}.{key} must be a non-empty list of integers, got {value!r}"
            )
        return list(value)

    def fraction(self, key: str, default: float) -> float:
        result = self.number(key, default)
        if result > 1:
            raise ConfigError(f"{self.name}.{key} must be between 0 and 1, got {result}")
        return result

    def optional_integer(self, key: str, *, minimum: int | None = None) -> int | None:
        if key not in self.section:
            return None
        return self.integer(key, 0, minimum=minimum)
