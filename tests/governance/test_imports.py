"""The CLI's import path stays light: ``govtrain --help`` must answer in well under a second."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "presidio_analyzer", "great_expectations", "fairlearn", "pandas", "matplotlib")


def test_cli_import_pulls_in_no_heavy_library() -> None:
    code = (
        "import sys, governance.cli\n"
        "from governance.cli import cli\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"heavy modules imported by governance.cli: {out}"


def test_help_runs_without_heavy_imports() -> None:
    code = (
        "import sys\n"
        "from governance.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print('LOADED=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "LOADED=\n" in out


# --- the import graph ------------------------------------------------------------------------------------

PACKAGES = ("governance", "datacards", "trainer", "audit", "policies", "reports")
# Imports flow down this order (DESIGN.md): governance -> datacards/trainer/reports/policies -> audit.
LEVEL = {"audit": 0, "policies": 1, "datacards": 1, "trainer": 1, "reports": 1, "governance": 2}


def _module_graph(*, lazy: bool = False, typing: bool = False) -> dict[str, set[str]]:
    """Imports between the project's modules: at module level, and with ``lazy`` also those inside functions
    (deliberate lazy imports still must not close a cycle). ``if TYPE_CHECKING`` blocks are never run and never
    count."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    modules = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str | None] = set()
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for block in tree.body if isinstance(block, ast.If) for n in ast.walk(block)}
        if typing:
            typing_only = set()
        nodes = [n for n in ast.walk(tree) if id(n) not in typing_only] if lazy else tree.body
        for node in nodes:
            if isinstance(node, ast.Import):
                targets |= {resolve(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(resolve(node.module))
                targets |= {resolve(f"{node.module}.{alias.name}") for alias in node.names}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def test_no_import_cycles() -> None:
    # Type-only imports count too: a cycle through ``if TYPE_CHECKING`` is still two modules that need each other.
    graph = _module_graph(lazy=True, typing=True)
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_imports_flow_down_the_layers() -> None:
    upward = sorted(
        f"{source} -> {target}"
        for source, targets in _module_graph().items() for target in targets
        if (LEVEL[target.split(".")[0]] > LEVEL[source.split(".")[0]])
        or (source.split(".")[0] != target.split(".")[0]
            and LEVEL[target.split(".")[0]] == LEVEL[source.split(".")[0]])
    )
    assert not upward, "imports against the layering: " + ", ".join(upward)


# Inside governance, DESIGN order: cli / console / runner above run, above gate, above trust, above crypto, above
# workspace; bootstrap (creating a workspace with its root, identities and keys) sits above workspace, crypto, trust.
SUBLEVEL = {"workspace": 0, "crypto": 1, "trust": 2, "gate": 3, "run": 4, "runner": 5, "console": 5, "cli": 6}


def _upward_inside_governance(graph: dict[str, set[str]]) -> list[str]:
    def sub(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if parts[0] == "governance" and len(parts) > 1 and parts[1] in SUBLEVEL else None

    return sorted(f"{source} -> {target}" for source, targets in graph.items() for target in targets
                  if (a := sub(source)) is not None and (b := sub(target)) is not None and SUBLEVEL[b] > SUBLEVEL[a])


def test_imports_flow_down_inside_governance() -> None:
    upward = _upward_inside_governance(_module_graph(lazy=True))
    assert not upward, "imports against governance's layers: " + ", ".join(upward)


def test_a_back_edge_inside_governance_is_caught() -> None:
    """The check above can fail: a workspace module importing trust is an upward edge."""
    graph = {"governance.workspace.layout": {"governance.trust.ledger"}, "governance.trust.ledger": set()}
    assert _upward_inside_governance(graph) == ["governance.workspace.layout -> governance.trust.ledger"]
