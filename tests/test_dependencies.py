"""Every distribution the code imports is declared in pyproject.toml, and the lock files are hashed.

A package that arrives only as a dependency of a dependency disappears the day upstream drops it:
app/ may import only what [project.dependencies] names, and tests/ and scripts/ only what the
runtime dependencies and the `test` extra name. Imports are read with `ast` (top-level and inside
functions, absolute only), each top-level module is mapped to the installed distributions that
provide it, and names are compared after PEP 503 normalisation.
"""

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = {"app", "tests", "scripts"}
LOCK_FILES = ("requirements.lock", "requirements-test.lock")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def requirements(*extras: str) -> list[Requirement]:
    lines = [*project()["dependencies"]]
    for extra in extras:
        lines += project()["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def declared(*extras: str) -> set[str]:
    return {normalise(requirement.name) for requirement in requirements(*extras)}


def sources(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def imported_modules(path: Path) -> Iterator[tuple[str, int]]:
    """(top-level module, line) for each absolute import in the file, at any depth."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.partition(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.partition(".")[0], node.lineno


def is_own_code(module: str, path: Path) -> bool:
    # A script run directly has its own folder on sys.path, so a sibling file is its own code too.
    return module in FIRST_PARTY or (path.parent / f"{module}.py").exists() or (path.parent / module).is_dir()


def undeclared_imports(files: list[Path], allowed: set[str], where: str) -> list[str]:
    providers = packages_distributions()
    problems: dict[tuple[str, Path], str] = {}
    for path in files:
        for module, line in imported_modules(path):
            if module in sys.stdlib_module_names or is_own_code(module, path) or (module, path) in problems:
                continue
            provided_by = sorted({normalise(name) for name in providers.get(module, [])})
            if not provided_by:
                problems[module, path] = (f"{path.relative_to(ROOT)}:{line}: imports {module!r}, "
                                          "which no installed distribution provides")
            elif not allowed.intersection(provided_by):
                problems[module, path] = (f"{path.relative_to(ROOT)}:{line}: imports {module!r} "
                                          f"(distribution {' or '.join(provided_by)}), not declared in {where}")
    return list(problems.values())


def test_app_imports_only_declared_runtime_dependencies():
    problems = undeclared_imports(sources("app"), declared(), "[project.dependencies]")
    assert not problems, "\n".join(problems)


def test_tests_and_scripts_import_only_runtime_or_test_extra_dependencies():
    problems = undeclared_imports(sources("tests", "scripts"), declared("test"),
                                  "[project.dependencies] or the `test` extra")
    assert not problems, "\n".join(problems)


def locked_requirements(lock: str) -> list[str]:
    """The lock's requirement entries, each with its continuation lines joined and comments dropped."""
    text = (ROOT / lock).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [entry.strip() for entry in "\n".join(lines).replace("\\\n", " ").splitlines() if entry.strip()]


@pytest.mark.parametrize("lock", LOCK_FILES)
def test_every_pin_in_the_lock_files_carries_a_hash(lock):
    entries = locked_requirements(lock)
    assert entries, f"{lock} has no requirements"
    unhashed = [entry.split()[0] for entry in entries if "--hash=sha256:" not in entry]
    unpinned = [entry.split()[0] for entry in entries if "==" not in entry.split()[0]]
    assert not unhashed, f"{lock}: pins without --hash=sha256: {unhashed} (regenerate with scripts/lock)"
    assert not unpinned, f"{lock}: requirements not pinned with ==: {unpinned} (regenerate with scripts/lock)"


@pytest.mark.parametrize(("lock", "extras"), [("requirements.lock", ()), ("requirements-test.lock", ("test",))])
def test_the_lock_files_satisfy_pyproject(lock, extras):
    """A dependency changed in pyproject.toml without running scripts/lock fails here, not at install time."""
    pins = {}
    for entry in locked_requirements(lock):
        name, _, version = re.sub(r"\[.*?\]", "", entry.split()[0]).partition("==")
        pins[normalise(name)] = version
    build = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["build-system"]["requires"]
    wanted = [*requirements(*extras), *map(Requirement, build)]
    stale = [str(requirement) for requirement in wanted
             if (requirement.marker is None or requirement.marker.evaluate())
             and not (normalise(requirement.name) in pins
                      and requirement.specifier.contains(pins[normalise(requirement.name)], prereleases=True))]
    assert not stale, f"{lock} does not satisfy {stale}: run scripts/lock"
