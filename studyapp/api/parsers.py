"""Request-body parsers of the API: REST framework's, with every malformed body a 400."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """REST framework's JSON parser, refusing deeply nested JSON with a 400.

    The standard decoder recurses once per level of nesting, so ``[[[[…`` a few thousand
    levels deep raises ``RecursionError``, which REST framework's parser does not catch.
    """

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the JSON is nested too deeply") from None
