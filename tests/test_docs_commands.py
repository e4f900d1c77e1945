"""docs/commands.md and docs/urls.md name every command option and every URL the code defines."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import load_command_class
from django.core.management.base import BaseCommand
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from analysis.__main__ import parser_build

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
COMMANDS = (DOCS / "commands.md").read_text(encoding="utf-8")
URLS = (DOCS / "urls.md").read_text(encoding="utf-8")
# The apps that define management commands, each in <app>/management/commands/.
COMMAND_APPS = ("studyapp", "distillation")
# The packages whose views count as the project's own, for the admin's URLs.
PROJECT_PACKAGES = ("config", "studyapp", "distillation", "analysis")
# Sample values for the placeholders of the documented paths, to resolve them.
PLACEHOLDER_VALUES = {
    "slug": "demo",
    "object_id": "1",
    "report_id": "1",
    "batch_id": "1",
    "key": "open",
}
FORMAT_SUFFIX = re.compile(r"<drf_format_suffix\w*:format>|\(\?P<format>")


def commands_defined() -> list[tuple[str, str]]:
    """(app, command) for every command module of the project's apps."""
    return [
        (app, path.stem)
        for app in COMMAND_APPS
        for path in sorted((ROOT / app / "management" / "commands").glob("*.py"))
        if not path.name.startswith("_")
    ]


def without_code_blocks(text: str) -> str:
    return re.sub(r"^```.*?^```$", "", text, flags=re.M | re.S)


def section_of(page: str, title: str) -> str:
    """The text under the ``##``/``###`` heading ``title``, up to the next such heading.

    Fenced code blocks (usage lines, examples) are left out, so an option counts as
    documented only where the prose or a table explains it.
    """
    lines = page.splitlines()
    heading = next(
        (i for i, line in enumerate(lines) if line.startswith(("## ", "### ")) and title in line),
        None,
    )
    assert heading is not None, f"no section headed {title!r}"
    end = next(
        (i for i in range(heading + 1, len(lines)) if lines[i].startswith(("## ", "### "))),
        len(lines),
    )
    return without_code_blocks("\n".join(lines[heading:end]))


def parser_options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def parser_positionals(parser: argparse.ArgumentParser) -> list[str]:
    """The names a page uses for the positional arguments: the metavar, else the DEST."""
    return [
        str(action.metavar or action.dest.upper())
        for action in parser._actions
        if not action.option_strings
    ]


def mentioned(text: str, word: str) -> bool:
    """``word`` appears in ``text`` as a whole option or name, not inside a longer one."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


DJANGO_OPTIONS = parser_options(BaseCommand().create_parser("manage.py", "command"))


def test_the_project_defines_the_commands_this_test_expects():
    names = {name for _, name in commands_defined()}
    assert {"create_study", "run_distillation", "analyze_study"} <= names


@pytest.mark.parametrize(("app", "name"), commands_defined(), ids=lambda value: str(value))
def test_every_command_and_each_of_its_options_is_documented(app, name):
    section = section_of(COMMANDS, f"`{name}`")
    parser = load_command_class(app, name).create_parser("manage.py", name)
    own = parser_options(parser) - DJANGO_OPTIONS
    missing = sorted(option for option in own if not mentioned(section, option))
    assert not missing, f"{name}: options not in docs/commands.md: {missing}"
    for positional in parser_positionals(parser):
        assert mentioned(section, positional), f"{name}: argument {positional} not documented"


def test_every_option_of_the_analysis_command_line_is_documented():
    section = section_of(COMMANDS, "`python -m analysis`")  # its "#### Plan overrides" too
    parser = parser_build()
    missing = sorted(
        option
        for option in parser_options(parser) - {"-h", "--help"}
        if not mentioned(section, option)
    )
    assert not missing, f"python -m analysis: options not in docs/commands.md: {missing}"
    for positional in parser_positionals(parser):
        assert mentioned(section, positional), positional


def test_every_documented_command_exists():
    documented = re.findall(r"^### `([a-z_]+)`$", COMMANDS, flags=re.MULTILINE)
    assert sorted(documented) == sorted(name for _, name in commands_defined())


def url_patterns(
    patterns: list[URLPattern | URLResolver], prefix: str = "", namespace: str = ""
) -> Iterator[tuple[str, str, URLPattern]]:
    """(namespace, full route, pattern) for every URL pattern below ``patterns``."""
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = entry.namespace or namespace
            yield from url_patterns(entry.url_patterns, prefix + str(entry.pattern), inner)
        else:
            yield namespace, prefix + str(entry.pattern), entry


def project_paths() -> list[str]:
    """The named URLs the project serves, written as the docs write them (``/s/<slug>/``)."""
    paths = []
    for namespace, route, pattern in url_patterns(get_resolver().url_patterns):
        if pattern.name is None or FORMAT_SUFFIX.search(route):
            continue  # unnamed catch-alls, and REST framework's format-suffix copies
        module = getattr(pattern.callback, "__module__", "") or ""
        if namespace == "admin" and not module.startswith(PROJECT_PACKAGES):
            continue  # the admin's own pages, as Django defines them
        paths.append("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", route))
    return paths


def test_the_url_walk_finds_the_site_the_participant_pages_the_api_and_the_admin_pages():
    paths = set(project_paths())
    assert {"/", "/healthz", "/s/<slug>/item/", "/api/studies/<slug>/ratings.csv"} <= paths
    assert "/admin/studyapp/study/<object_id>/dashboard/" in paths
    assert "/admin/login/" not in paths


@pytest.mark.parametrize("path", project_paths())
def test_every_url_is_documented_by_its_path(path):
    assert f"| `{path}` |" in URLS, f"{path} is not in a table of docs/urls.md"


def documented_paths() -> list[str]:
    return re.findall(r"^\| `(/[^`]*)` \|", URLS, flags=re.MULTILINE)


def test_every_documented_path_is_served():
    assert documented_paths()
    for path in documented_paths():
        concrete = re.sub(r"<(\w+)>", lambda m: PLACEHOLDER_VALUES[m.group(1)], path)
        match = resolve(concrete)
        assert match.url_name is not None, f"{path} reaches no named view"


def anchor_of(heading: str) -> str:
    """The anchor a Markdown renderer gives a heading, as GitHub makes it."""
    text = heading.lstrip("#").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@pytest.mark.parametrize("page", ["commands.md", "urls.md"])
def test_the_pages_link_only_to_files_and_headings_inside_the_repository(page):
    text = (DOCS / page).read_text(encoding="utf-8")
    assert "../" not in text
    for target in re.findall(r"\]\(([^)]+)\)", text):
        if target.startswith("http"):
            continue
        name, _, anchor = target.partition("#")
        linked = (DOCS / name).resolve() if name else DOCS / page
        assert ROOT in linked.parents, f"{page}: {target} is outside the repository"
        assert linked.is_file(), f"{page}: {target} does not exist"
        if anchor:
            headings = [
                anchor_of(line)
                for line in without_code_blocks(linked.read_text(encoding="utf-8")).splitlines()
                if line.startswith("#")
            ]
            assert anchor in headings, f"{page}: no heading for the link {target}"


def test_the_readme_links_both_pages():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/commands.md)" in readme
    assert "(docs/urls.md)" in readme
