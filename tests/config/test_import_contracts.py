"""The import contracts in pyproject.toml cover every module they should.

`lint-imports` (in `make lint`) checks the contracts themselves; these tests check that the
contracts' module lists keep up with the packages: a new distillation module is either a library
module under the no-Django contract or part of the Django layer, and studyformats stays
dependency-free, which a list of forbidden packages alone cannot say.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# distillation's Django layer: the app, its models and admin, the services that use the ORM,
# the migrations and the management commands. Every other module is library code.
DISTILLATION_DJANGO_LAYER = {"admin", "apps", "management", "migrations", "models", "services"}
# What studyformats may import besides the standard library: pydantic (with pydantic_core, the
# half of pydantic that defines its error types) and itself.
STUDYFORMATS_ALLOWED = {"pydantic", "pydantic_core", "studyformats"}


def contract_get(contract_id: str) -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}
    return contracts[contract_id]


def submodules_list(package: str) -> set[str]:
    """The modules and subpackages directly inside ``package``, without its ``__init__``."""
    folder = ROOT / package
    names = {path.stem for path in folder.glob("*.py") if path.stem != "__init__"}
    names |= {path.parent.name for path in folder.glob("*/__init__.py")}
    return names


def imported_roots(path: Path) -> set[str]:
    """The top-level names of the absolute imports in ``path``, at any depth of the module."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_every_distillation_module_is_library_or_django_layer() -> None:
    contract = contract_get("distillation-library-without-django")
    library = {name.removeprefix("distillation.") for name in contract["source_modules"]}
    modules = submodules_list("distillation")
    assert library.isdisjoint(DISTILLATION_DJANGO_LAYER)
    unlisted = modules - library - DISTILLATION_DJANGO_LAYER
    assert not unlisted, (
        f"distillation modules {sorted(unlisted)} are in no import contract: add them to "
        "source_modules of 'distillation-library-without-django' in pyproject.toml, or to "
        "DISTILLATION_DJANGO_LAYER here if they are Django code"
    )
    assert library <= modules, f"the contract lists absent modules {sorted(library - modules)}"
    forbidden = set(contract["forbidden_modules"])
    assert {f"distillation.{name}" for name in DISTILLATION_DJANGO_LAYER} <= forbidden


def test_the_module_lister_finds_modules_and_subpackages() -> None:
    names = submodules_list("distillation")
    assert {"pipeline", "teachers", "management", "models"} <= names
    assert "__init__" not in names


def test_studyformats_imports_only_the_standard_library_and_pydantic() -> None:
    allowed = set(sys.stdlib_module_names) | {"__future__"} | STUDYFORMATS_ALLOWED
    files = sorted((ROOT / "studyformats").rglob("*.py"))
    assert files, "studyformats has no modules"
    for path in files:
        extra = imported_roots(path) - allowed
        assert not extra, f"{path.relative_to(ROOT)} imports {sorted(extra)}"


def test_the_import_reader_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text(
        "import os.path\nfrom . import sibling\n\n\ndef f():\n    from pandas import DataFrame\n",
        encoding="utf-8",
    )
    assert imported_roots(module) == {"os", "pandas"}
