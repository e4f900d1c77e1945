"""The one error type the analysis raises for input it cannot analyse."""

from __future__ import annotations


class AnalysisError(ValueError):
    """Input the analysis cannot use; the message names the problem in one line."""
