"""Every third-party module the project imports comes from a distribution pyproject.toml declares.

A package that is only present because a developer installed it by hand, or because another
dependency happens to pull it in, breaks a clean install; this catches it before CI does.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("operator", "trainers", "tests", "benchmarks", "hack")
OWN_PACKAGES = {"transfer_operator", "transfer_trainers", "tests"}


def top_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def sibling_modules(path: Path) -> set[str]:
    """Scripts import modules next to them (benchmarks/fleet.py, tests' helpers)."""
    return {p.stem for p in path.parent.glob("*.py")} | {p.name for p in path.parent.iterdir() if p.is_dir()}


def declared_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements.extend(extra)
    return {normalize(Requirement(r).name) for r in requirements}


def normalize(distribution: str) -> str:
    return distribution.lower().replace("_", "-").replace(".", "-")


def test_every_third_party_import_is_declared():
    declared = declared_distributions()
    module_to_dists = packages_distributions()
    undeclared: dict[str, set[str]] = {}
    for directory in SOURCE_DIRS:
        for path in (ROOT / directory).rglob("*.py"):
            for module in top_level_imports(path) - sys.stdlib_module_names - OWN_PACKAGES - sibling_modules(path):
                dists = {normalize(d) for d in module_to_dists.get(module, [module])}
                if not dists & declared:
                    undeclared.setdefault(module, set()).add(str(path.relative_to(ROOT)))
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
