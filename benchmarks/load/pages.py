"""Reading the pages the server sends, as far as a simulated participant needs them.

Only the start tags a participant acts on are read (forms and their inputs, links,
stylesheets and scripts); the rest of the page is skipped unread, which keeps the load
generator's share of the CPUs small. Nothing on the page is run: a participant whose browser
"runs JavaScript" does what htmx would do with a form's ``hx-post`` attribute.
"""

from __future__ import annotations

import functools
import html
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

# Start tags and their attributes, as an HTML tokenizer reads them.
TAG = re.compile(r"<(form|input|a|link|script)\b((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>", re.I)
ATTRIBUTE = re.compile(r"""([^\s=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?""")


@dataclass
class Page:
    """What a simulated participant acts on in a page or an htmx partial: each form (its
    ``action`` for a plain submission and its ``hx-post`` for htmx), the links, and the
    stylesheets and scripts a browser would load."""

    forms: list[dict[str, Any]] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    assets: list[str] = field(default_factory=list)

    def tag(self, name: str, a: dict[str, str]) -> None:
        if name == "form":
            self.forms.append(
                {
                    "action": a.get("action", ""),
                    "hx_post": a.get("hx-post", ""),
                    "method": a.get("method", "get").lower(),
                    "hidden": {},
                    "radios": defaultdict(list),
                }
            )
        elif name == "input" and self.forms:
            form = self.forms[-1]
            kind = a.get("type", "text").lower()
            if kind == "hidden":
                form["hidden"][a.get("name", "")] = a.get("value", "")
            elif kind == "radio":
                form["radios"][a.get("name", "")].append(a.get("value", ""))
        elif name == "a" and a.get("href"):
            self.links.append(a["href"])
        elif (name == "link" and a.get("rel") == "stylesheet") or (
            name == "script" and a.get("src")
        ):
            self.assets.append(a.get("href") or a.get("src", ""))


@functools.lru_cache(maxsize=4096)
def _attributes(source: str) -> dict[str, str]:
    """A tag's attributes by lower-case name, unescaped; callers must not change the dict.

    Most tags come back unchanged on every page (the radio buttons of each row, the
    stylesheet and script), so each distinct tag is read once.
    """
    return {
        key.lower(): html.unescape(double or single or bare or "")
        for key, double, single, bare in ATTRIBUTE.findall(source)
    }


def page_parse(text: str) -> Page:
    page = Page()
    for name, source in TAG.findall(text):
        page.tag(name.lower(), _attributes(source))
    return page
