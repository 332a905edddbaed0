"""The house's plan, read from the imports: no circle anywhere, no arrow from a lower room to a higher one.

Inside ``gateway/`` the rooms are layered (a room may import its own modules
and any room below it); between the top-level folders the directions are the
ones ``docs/architecture.md`` draws. Imports under ``TYPE_CHECKING`` count:
they are arrows a reader follows too.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "drivers", "protocols", "offline_queue", "ledger", "simulators")

# Lowest first. A module belongs to the first room whose name is a prefix of its own.
GATEWAY_ROOMS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("gateway.config", "gateway.errors", "gateway.events", "gateway.clock", "gateway.version")),
    ("ledger_link", ("gateway.ledger_link",)),
    ("members", ("gateway.members",)),
    ("staff", ("gateway.staff",)),
    ("payments", ("gateway.payments",)),
    ("sale", ("gateway.sale",)),
    ("devices", ("gateway.devices",)),
    ("ops", ("gateway.ops",)),
    ("services", ("gateway.services",)),
    ("api", ("gateway.api",)),
    ("daemon", ("gateway.daemon", "gateway.reload")),
    ("cli", ("gateway.cli",)),
]

# Which top-level folders each may import (besides itself).
FOLDERS = {
    "protocols": set(),
    "drivers": {"protocols"},
    "offline_queue": {"protocols"},
    "ledger": {"protocols"},
    "simulators": {"protocols", "drivers", "ledger"},
    "gateway": {"protocols", "drivers", "offline_queue"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path) -> set[str]:
    """Every project module ``path`` imports, at any depth of the file (functions, TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        # ``from a.b import c`` names a module when c is one, else a name in a.b.
        edges[name] = {target for target in project_imports(path) if target in modules and target != name}
    return edges


def room(module: str) -> int | None:
    for rank, (_, prefixes) in enumerate(GATEWAY_ROOMS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def test_every_gateway_module_has_a_room() -> None:
    homeless = [m for m in graph() if m.startswith("gateway.") and room(m) is None]
    assert homeless == [], f"modules in no room of the plan (add them to GATEWAY_ROOMS): {homeless}"


def test_no_circle_between_modules() -> None:
    try:
        graphlib.TopologicalSorter(graph()).prepare()
    except graphlib.CycleError as err:
        pytest.fail(f"an import circle: {' -> '.join(err.args[1])}")


def test_no_arrow_from_a_lower_room_to_a_higher_one() -> None:
    upward = []
    for source, targets in graph().items():
        here = room(source)
        if here is None:
            continue
        for target in targets:
            there = room(target)
            if there is not None and there > here:
                upward.append(f"{source} ({GATEWAY_ROOMS[here][0]}) -> {target} ({GATEWAY_ROOMS[there][0]})")
    assert upward == []


def test_folders_import_only_downward() -> None:
    wrong = []
    for source, targets in graph().items():
        folder = source.split(".")[0]
        for target in targets:
            other = target.split(".")[0]
            if other != folder and other not in FOLDERS[folder]:
                wrong.append(f"{source} -> {target}")
    assert wrong == []


def test_the_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The check itself can fail: a circle and a lazy upward import are found."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\nimport gateway.cli\nif TYPE_CHECKING:\n    from gateway.sale import basket\n"
        "def f() -> None:\n    from gateway.services import Services\n",
        encoding="utf-8",
    )
    assert project_imports(sample) >= {"gateway.cli", "gateway.sale", "gateway.sale.basket", "gateway.services"}
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter({"a": {"b"}, "b": {"a"}}).prepare()
