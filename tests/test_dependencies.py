"""pyproject.toml as a packager reads it: every import declared, ranges that hold the installed versions, and upper
bounds where the code relies on an API its next release removes or never promised."""

import ast
import importlib.metadata as metadata
import sys

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from support.paths import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {_norm(Requirement(r).name): Requirement(r) for r in listed}


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def _imported_modules() -> set[str]:
    modules = set()
    for path in (REPO / "lassbench").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"lassbench"}


def test_every_third_party_module_lassbench_imports_is_declared():
    declared = set(_requirements())
    providers = metadata.packages_distributions()
    undeclared = {m: providers.get(m) for m in _imported_modules()
                  if not {_norm(d) for d in providers.get(m, [m])} & declared}
    assert not undeclared, f"imported but not in pyproject.toml: {undeclared}"


def test_the_installed_versions_satisfy_the_declared_ranges():
    for name, requirement in _requirements().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        assert requirement.specifier.contains(installed, prereleases=True), f"{name} {installed} vs {requirement}"


def test_the_pyarrow_floor_is_what_the_installed_datasets_needs():
    needed = next(Requirement(r) for r in metadata.requires("datasets") if Requirement(r).name == "pyarrow")
    floors = [Version(s.version) for s in _requirements()["pyarrow"].specifier if s.operator == ">="]
    assert floors and all(needed.specifier.contains(str(floor)) for floor in floors), needed


def test_apis_that_a_next_release_removes_or_never_promised_are_bounded_above():
    # mir_eval.separation: deprecated in 0.8, removed in 0.9; pyloudnorm: mixing.py reads Meter._filters
    for name, first_unsafe in (("mir-eval", "0.9"), ("pyloudnorm", "0.3")):
        assert not _requirements()[name].specifier.contains(first_unsafe), name
