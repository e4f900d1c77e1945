"""Errors the distillation pipeline raises for bad input, with messages meant for users."""

from __future__ import annotations


class DistillationError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""


class ConfigError(DistillationError):
    """A run configuration names a wrong key or value; the message names it and the accepted values."""


class DataError(DistillationError):
    """A data file is malformed; the message names the file and line."""
