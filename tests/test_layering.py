"""The import rules of DESIGN.md section 1, checked on the source (no import side effects)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "respkv"

# Which respkv layers each layer may import (besides itself).
ALLOWED_LAYERS: dict[str, set[str]] = {
    "raft": set(),
    "resp": set(),
    "kv": {"raft", "resp"},
    "storage": {"raft", "kv"},
    "peer": {"raft", "resp"},
    "server": {"raft", "resp", "kv", "storage", "peer"},
    "sim": {"raft", "kv", "resp"},
}
# The pure core must not touch IO, time, threads or randomness of its own.
FORBIDDEN_IN_CORE = {
    "asyncio",
    "time",
    "socket",
    "threading",
    "random",
    "rocksdict",
    "os",
    "select",
    "selectors",
    "subprocess",
    "multiprocessing",
    "concurrent",
    "datetime",
    "uvloop",
}


def imported_modules(path: Path) -> list[tuple[str, bool]]:
    """(module, type_checking_only) for every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in ast.walk(node):
                type_only.add(id(child))
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in type_only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package path
                parts = path.relative_to(PACKAGE.parent).with_suffix("").parts[: -node.level]
                base = ".".join(parts)
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((module, id(node) in type_only))
    return found


def layer_files(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(ALLOWED_LAYERS))
def test_layer_imports_only_lower_layers(layer: str) -> None:
    for path in layer_files(layer):
        for module, _ in imported_modules(path):
            parts = module.split(".")
            if parts[0] != "respkv" or len(parts) < 2:
                continue
            target = parts[1]
            if target == layer or target not in ALLOWED_LAYERS:
                continue
            assert target in ALLOWED_LAYERS[layer], f"{path}: {layer}/ may not import {module}"


def test_nothing_in_production_imports_sim() -> None:
    for path in PACKAGE.rglob("*.py"):
        if "sim" in path.relative_to(PACKAGE).parts[:1]:
            continue
        for module, _ in imported_modules(path):
            assert not module.startswith("respkv.sim"), f"{path} imports {module}"


@pytest.mark.parametrize("layer", ["raft", "resp"])
def test_pure_layers_touch_no_io(layer: str) -> None:
    for path in layer_files(layer):
        for module, type_only in imported_modules(path):
            root = module.split(".")[0]
            if root == "random" and type_only:
                continue  # annotating an injected random.Random is fine
            assert root not in FORBIDDEN_IN_CORE, f"{path} imports {module}"


def test_checker_sees_violations(tmp_path: Path) -> None:
    """The AST walk must actually find imports, or the rules above prove nothing."""
    sample = PACKAGE / "raft" / "types.py"
    modules = [m for m, _ in imported_modules(sample)]
    assert "enum" in modules and "dataclasses" in modules
