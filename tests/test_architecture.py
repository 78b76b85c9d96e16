"""The house rules of the layout, read from the imports of every module in app/ (with ``ast``).

- protocol/ imports nothing of ours; chain/ imports only protocol/ and config; db/ imports no domain.
- No import cycle between packages (nor through the top-level modules).
- Only ``app.main`` builds the service from ``app.wiring``: routes take their parts from ``app.deps``.
- Only repositories and db/ run SQL; only chain/ speaks JSON-RPC (dev/, the dev chain's tooling, drives
  anvil's own methods and is never imported by the serving process).

Imports inside ``if TYPE_CHECKING:`` are for type checkers only and are not dependencies at run time.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"


@dataclass(frozen=True)
class Module:
    name: str  # app.chain.rpc
    path: Path
    imports: frozenset[str] = field(default_factory=frozenset)  # every module named by a run-time import
    imported_names: frozenset[tuple[str, str]] = field(default_factory=frozenset)  # (module, name) pairs
    plain_imports: frozenset[str] = field(default_factory=frozenset)  # `import x.y` statements
    string_literals: frozenset[str] = field(default_factory=frozenset)

    @property
    def node(self) -> str:
        """The package (``chain``) or top-level module (``config``) this module belongs to."""
        parts = self.name.split(".")
        return parts[1] if len(parts) > 1 else parts[0]

    @property
    def relative(self) -> str:
        return str(self.path.relative_to(APP.parent))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:``."""
    found: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        found.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            stack.append(child)
    return found


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(APP.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def parse_module(path: Path, source: str | None = None) -> Module:
    tree = ast.parse(source if source is not None else path.read_text(encoding="utf-8"))
    imports: set[str] = set()
    plain: set[str] = set()
    names: set[tuple[str, str]] = set()
    strings: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            imports.update(alias.name for alias in node.names)
            plain.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imports.add(node.module)
            for alias in node.names:
                names.add((node.module, alias.name))
                imports.add(f"{node.module}.{alias.name}")  # `from app import x` names module app.x
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings.add(node.value)
    return Module(_module_name(path), path, frozenset(imports), frozenset(names), frozenset(plain),
                  frozenset(strings))


@cache
def modules() -> tuple[Module, ...]:
    return tuple(parse_module(path) for path in sorted(APP.rglob("*.py")))


def _ours(imported: str) -> str | None:
    """The node (package or top-level module) an import of ours names, or None for anything else."""
    parts = imported.split(".")
    if parts[0] != "app" or len(parts) < 2:
        return None
    node = parts[1]
    if (APP / node).is_dir() or (APP / f"{node}.py").is_file():
        return node
    return None


def dependencies(module: Module) -> set[str]:
    """The other nodes of ours this module imports at run time."""
    return {node for node in map(_ours, module.imports) if node is not None and node != module.node}


def in_node(node: str) -> list[Module]:
    return [module for module in modules() if module.node == node]


# ------------------------------------------------------------------------------------------- layers

LAYERS = {
    # node: the nodes of ours it may import
    "protocol": set(),
    "chain": {"protocol", "config"},
    "db": {"errors"},
}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_a_low_layer_imports_only_what_is_below_it(layer: str):
    offences = [f"{module.relative} imports app.{node}"
                for module in in_node(layer) for node in sorted(dependencies(module) - LAYERS[layer])]
    assert not offences, f"{layer}/ may import only {sorted(LAYERS[layer]) or 'nothing of ours'}: {offences}"


# ------------------------------------------------------------------------------------------- cycles


def node_graph(mods: tuple[Module, ...]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module in mods:
        graph[module.node] |= dependencies(module)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def _edge_witness(source: str, target: str) -> str:
    for module in in_node(source):
        if target in dependencies(module):
            return f"{module.relative} -> app.{target}"
    return f"{source} -> {target}"


def test_no_import_cycle_between_packages_or_top_level_modules():
    cycle = find_cycle(node_graph(modules()))
    witnesses = [_edge_witness(a, b) for a, b in itertools.pairwise(cycle)] if cycle else []
    assert cycle is None, f"import cycle {' -> '.join(cycle or [])}: {witnesses}"


# ------------------------------------------------------------------------------------- composition


def test_only_the_app_factory_builds_the_service_routes_take_parts_from_deps():
    importers = sorted(module.relative for module in modules()
                       if "app.wiring" in module.imports and module.name != "app.main")
    assert not importers, f"only app/main.py imports app.wiring (routes use app.deps): {importers}"


def test_deps_imports_no_domain_at_run_time():
    deps = next(module for module in modules() if module.name == "app.deps")
    assert not dependencies(deps), f"app/deps.py imports {sorted(dependencies(deps))} at run time"


# ------------------------------------------------------------------------------------------ SQL and RPC

SQL_MODULES = ("sqlalchemy", "sqlmodel")
SQL_CONSTRUCTS = frozenset({
    "select", "insert", "update", "delete", "text", "func", "Session", "Connection", "tuple_", "case", "cast",
    "literal", "literal_column", "bindparam", "and_", "or_", "not_", "exists", "union", "create_engine",
})


def runs_sql(module: Module) -> list[str]:
    """What this module imports that builds or runs SQL."""
    found = [f"{source}.{name}" for source, name in module.imported_names
             if source.split(".")[0] in SQL_MODULES and name in SQL_CONSTRUCTS]
    found += [name for name in module.plain_imports if name.split(".")[0] in SQL_MODULES]  # sqlalchemy.select
    found += [name for name in module.imports if name.split(".")[0] in SQL_MODULES and ".dialects" in name]
    return sorted(found)


def may_run_sql(module: Module) -> bool:
    return module.node == "db" or module.path.name == "repository.py"


def test_only_repositories_and_db_run_sql():
    offences = {module.relative: runs_sql(module) for module in modules()
                if not may_run_sql(module) and runs_sql(module)}
    assert not offences, f"SQL outside a repository or db/: {offences}"


JSON_RPC_METHOD = re.compile(r"^(eth|net|web3|txpool|debug|anvil|evm)_[A-Za-z]+$")


def speaks_json_rpc(module: Module) -> list[str]:
    return sorted(text for text in module.string_literals if JSON_RPC_METHOD.match(text))


def test_only_chain_speaks_json_rpc():
    offences = {module.relative: speaks_json_rpc(module) for module in modules()
                if module.node not in ("chain", "dev") and speaks_json_rpc(module)}
    assert not offences, f"JSON-RPC methods called outside chain/: {offences}"


# ------------------------------------------------------------------------------ the rules can fail


@pytest.mark.parametrize(("where", "source", "rule"), [
    ("protocol/models.py", "from app.config import Settings", "layer"),
    ("chain/rpc.py", "from app.db.engine import make_engine", "layer"),
    ("db/engine.py", "from app.settlement.models import Settlement", "layer"),
    ("settlement/journal.py", "from app.ledger.routes import router", "cycle"),
    ("ledger/routes.py", "from app.wiring import Service", "wiring"),
    ("facilitator/service.py", "from sqlalchemy import select", "sql"),
    ("gateway/paywall.py", "METHOD = 'eth_getBalance'", "rpc"),
])
def test_each_rule_refuses_the_import_it_forbids(where: str, source: str, rule: str):
    """Add one forbidden line to a real module and check that its rule catches it."""
    path = APP / where
    changed = parse_module(path, path.read_text(encoding="utf-8") + "\n" + source + "\n")
    mods = tuple(changed if module.path == path else module for module in modules())
    if rule == "layer":
        assert dependencies(changed) - LAYERS[changed.node]
    elif rule == "cycle":
        assert find_cycle(node_graph(mods)) is not None and find_cycle(node_graph(modules())) is None
    elif rule == "wiring":
        assert "app.wiring" in changed.imports and changed.name != "app.main"
    elif rule == "sql":
        assert runs_sql(changed) and not may_run_sql(changed)
    else:
        assert speaks_json_rpc(changed) and changed.node not in ("chain", "dev")
