"""The library's layout rules: data flows one way down the layers (no import cycle, even through imports inside
functions), the ground floor and the corpora and protocols never reach up, and a module holds one concept (a long
module is named here with the reason it is still one)."""

from __future__ import annotations

import ast
from pathlib import Path

from support.paths import REPO

PACKAGE = REPO / "lassbench"
GROUND_FLOOR = {"lassbench.errors", "lassbench.paths", "lassbench.safe_names", "lassbench.jsonio",
                "lassbench.audio", "lassbench.metrics", "lassbench.progress"}
COMMAND_LAYER = ("lassbench.build", "lassbench.ready", "lassbench.run", "lassbench.evaluate", "lassbench.summary",
                 "lassbench.leaderboard", "lassbench.train", "lassbench.separate", "lassbench.listen", "lassbench.cli")
MAX_LINES = 450
ONE_CONCEPT_THOUGH_LONG = {
    "lassbench.metrics": "the metric functions; most of its length is BSS-Eval's distortion filter solved in blocks",
    "lassbench.models.published.clapsep": "one released architecture, ported module for module",
    "lassbench.run": "the orchestration of one run: variants, fingerprints, ranks and result folders",
}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every lassbench module ``name`` imports, at any depth (inside functions too)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _is_under(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_import_graph_has_no_cycle_even_through_imports_inside_functions():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


def test_the_ground_floor_imports_only_the_ground_floor():
    upward = {name: sorted(imports - GROUND_FLOOR - {"lassbench"}) for name, imports in _graph().items()
              if name in GROUND_FLOOR and imports - GROUND_FLOOR - {"lassbench"}}
    assert upward == {}


def test_corpora_protocols_and_models_never_import_the_command_layer():
    upward = {name: sorted(i for i in imports if _is_under(i, COMMAND_LAYER)) for name, imports in _graph().items()
              if _is_under(name, ("lassbench.corpora", "lassbench.protocols", "lassbench.models", "lassbench.mixing",
                                  "lassbench.manifests"))}
    assert {k: v for k, v in upward.items() if v} == {}


def test_nothing_but_the_cli_imports_the_cli():
    entry_points = ("lassbench.cli", "lassbench.__main__")
    offenders = [name for name, imports in _graph().items()
                 if not _is_under(name, entry_points) and any(_is_under(i, ("lassbench.cli",)) for i in imports)]
    assert offenders == []


def test_a_long_module_is_one_concept_named_here():
    long = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in _modules().items()}
    unexplained = {name: n for name, n in long.items() if n > MAX_LINES and name not in ONE_CONCEPT_THOUGH_LONG}
    assert unexplained == {}, "split these modules, or say here why each is one concept"
