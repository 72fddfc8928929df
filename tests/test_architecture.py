"""The shape of the ``arbiter`` package, checked on its source tree: pure ``ast``, no imports of
the code under test, no servers, well under a second.

Which files are checked: the modules of the ``arbiter`` package, found through the
``[tool.setuptools.package-dir]`` table of pyproject.toml (``arbiter.domain`` = ``domain/``,
``arbiter.services`` = ``services/``, ...), each directory walked with its subpackages.
``benchmarks/`` and ``tests/`` are not package modules: they use the package from outside, are
not installed with it, and may be as long and import as widely as a measurement needs, so none
of these rules applies to them.

The rules, each parametrised per module so that a failure names the module and what is wrong:

* **No import cycle.** The graph has an edge from a module to every module of the package it
  imports, wherever the import is written (module level, inside a function, under
  ``TYPE_CHECKING``), absolute or relative; ``from x import y`` is an edge to ``x.y`` when ``y``
  is a submodule, else to ``x``. Importing ``a.b.c`` also runs the ``__init__`` of ``a`` and
  ``a.b``, but those implicit parent edges are not counted: a package's own modules always run
  after its ``__init__`` has started, so counting them would make every package that re-exports
  its modules a "cycle". A cycle is a strongly connected component of more than one module, or
  a module importing itself. A lazy import inside a function does not break a cycle, it hides
  it; so it counts.
* **No module over 500 lines** (the house rule: a room holds one job).
* **The domain stays pure.** A module under ``domain/`` may import only the standard library's
  computing modules (:data:`DOMAIN_STDLIB`), msgspec, numpy and ``arbiter.domain`` itself:
  nothing that reads or writes files, sockets, processes, the clock or the environment, and no
  other layer. Forbidden on purpose: ``os``, ``sys``, ``pathlib``, ``io``, ``socket``,
  ``subprocess``, ``threading``, ``asyncio``, ``time`` (a fold that reads the clock gives a
  different answer on replay; the domain takes times as arguments), ``logging`` (writes to
  handlers; the domain returns reasons instead). Allowed although it can print: ``warnings``,
  which the Bradley-Terry fit uses to say it did not converge without changing its result type;
  the caller decides whether that is printed, ignored or an error.
* **Public modules say what they export.** A module whose name does not start with ``_``
  (package ``__init__``s included) has a module-level literal ``__all__``, and every name in it
  is defined or imported by the module (or, in a package ``__init__``, is a submodule).
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 500
DOMAIN = "arbiter.domain"

DOMAIN_STDLIB = frozenset(
    {
        "__future__",
        "abc",
        "bisect",
        "collections",
        "copy",
        "dataclasses",
        "datetime",
        "decimal",
        "enum",
        "fractions",
        "functools",
        "hashlib",
        "heapq",
        "hmac",
        "ipaddress",
        "itertools",
        "json",
        "math",
        "numbers",
        "operator",
        "random",
        "re",
        "statistics",
        "string",
        "types",
        "typing",
        "unicodedata",
        "urllib.parse",
        "warnings",
    }
)
"""Standard-library modules a domain module may import: they compute, they do no I/O."""
DOMAIN_THIRD_PARTY = frozenset({"msgspec", "numpy"})
"""Third-party packages a domain module may import (pure data types and array maths)."""


# ---------------------------------------------------------------------------------------------
# The checker: small functions over a source tree, unit-tested below on synthetic trees
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Module:
    """One source module of the package: its dotted name, its file, whether it is a package."""

    name: str
    path: Path
    is_package: bool

    @property
    def package(self) -> str:
        """The package relative imports in this module start from."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


def package_dirs(pyproject: Path) -> dict[str, Path]:
    """``[tool.setuptools.package-dir]`` of ``pyproject``: package name -> its directory."""
    table = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-dir"]
    return {name: (pyproject.parent / folder).resolve() for name, folder in table.items()}


def discover(dirs: Mapping[str, Path]) -> dict[str, Module]:
    """Every module of the package: each mapped directory with its subpackages (those with an
    ``__init__.py``), keyed by dotted name. A file reachable from two mappings counts once,
    under the longest (most specific) package name."""
    found: dict[Path, Module] = {}
    for package, folder in sorted(dirs.items(), key=lambda item: -len(item[0])):
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder)
            if "__pycache__" in rel.parts or path in found:
                continue
            if not all(
                (folder / Path(*rel.parts[:k]) / "__init__.py").exists()
                for k in range(1, len(rel.parts))
            ):
                continue  # inside a plain directory, not a subpackage
            parts = [package, *rel.with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            found[path] = Module(".".join(parts), path, is_package)
    return {m.name: m for m in found.values()}


def imported_names(module: Module) -> Iterator[tuple[int, str, str | None]]:
    """``(line, target, attribute)`` for each import in the module, anywhere in it; a relative
    import is resolved against the module's package. ``attribute`` is the name taken by
    ``from target import attribute`` (None for ``import target``)."""
    tree = ast.parse(module.path.read_text(), str(module.path))
    nodes = sorted(
        (n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)),
        key=lambda n: (n.lineno, n.col_offset),
    )
    for node in nodes:  # in the order they are written
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                yield node.lineno, target, alias.name


def resolve(target: str, attribute: str | None, modules: Mapping[str, Module]) -> str | None:
    """The package module an import refers to (None for one outside the package): ``x.y`` for
    ``from x import y`` when that is a module, else the longest known prefix of ``x``."""
    if attribute is not None and f"{target}.{attribute}" in modules:
        return f"{target}.{attribute}"
    parts = target.split(".")
    while parts:
        name = ".".join(parts)
        if name in modules:
            return name
        parts.pop()
    return None


def import_graph(modules: Mapping[str, Module]) -> dict[str, set[str]]:
    """Module -> the package modules it imports (see the module docstring for what counts)."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, module in modules.items():
        for _line, target, attribute in imported_names(module):
            edge = resolve(target, attribute, modules)
            if edge is not None:
                graph[name].add(edge)
    return graph


def cycles(graph: Mapping[str, set[str]]) -> dict[str, list[str]]:
    """Each module in a cycle -> one cycle through it (``[m, ..., m]``), by Tarjan's strongly
    connected components: a component of more than one module, or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(root: str) -> None:  # iterative: the graph may be deep
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)

    for name in sorted(graph):
        if name not in index:
            visit(name)
    found: dict[str, list[str]] = {}
    for component in components:
        members = set(component)
        if len(component) == 1 and component[0] not in graph[component[0]]:
            continue
        for start in component:
            found[start] = _path_back(start, members, graph)
    return found


def _path_back(start: str, members: set[str], graph: Mapping[str, set[str]]) -> list[str]:
    """The shortest import path from ``start`` back to itself inside its component (BFS)."""
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if child not in parent:
                    parent[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is in no cycle")  # pragma: no cover - Tarjan said it was


def line_count(module: Module) -> int:
    """Lines in the module's file."""
    return len(module.path.read_text().splitlines())


def impure_imports(module: Module, modules: Mapping[str, Module]) -> list[str]:
    """``"line N: import X"`` for each import a domain module may not make."""
    bad = []
    for line, target, attribute in imported_names(module):
        top = target.split(".")[0]
        if top == "arbiter":
            edge = resolve(target, attribute, modules) or target
            allowed = edge == DOMAIN or edge.startswith(DOMAIN + ".")
        else:
            allowed = top in DOMAIN_STDLIB or top in DOMAIN_THIRD_PARTY or target in DOMAIN_STDLIB
        if not allowed:
            shown = target if attribute is None else f"{target}.{attribute}"
            bad.append(f"line {line}: import {shown}")
    return bad


def export_problems(module: Module, modules: Mapping[str, Module]) -> list[str]:
    """Why the module's ``__all__`` is missing or wrong (empty when it is right or private)."""
    if module.name.rpartition(".")[2].startswith("_"):
        return []
    tree = ast.parse(module.path.read_text(), str(module.path))
    declared: list[str] | None = None
    bound: set[str] = set()
    for node in _top_level(tree.body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names = {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
                bound |= names
                if "__all__" in names and node.value is not None:
                    try:
                        value = ast.literal_eval(node.value)
                    except ValueError:
                        return ["__all__ is not a literal list of strings (it cannot be checked)"]
                    declared = (declared or []) + list(value)
    if declared is None:
        return ["no module-level __all__ (a public module states what it exports)"]
    submodules = {n.rpartition(".")[2] for n in modules if n.rpartition(".")[0] == module.name}
    unknown = [n for n in declared if n not in bound and n not in submodules]
    return [f"__all__ names {n!r}, which the module neither defines nor imports" for n in unknown]


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Module-level statements, looking into ``if``/``try``/``with``/``for`` blocks (which bind
    module names) but not into functions or classes."""
    for node in body:
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(node, field, None)
            if isinstance(inner, list):
                yield from _top_level(inner)
        for handler in getattr(node, "handlers", None) or []:
            yield from _top_level(handler.body)


# ---------------------------------------------------------------------------------------------
# The rules, on this source tree
# ---------------------------------------------------------------------------------------------

MODULES = discover(package_dirs(ROOT / "pyproject.toml"))
GRAPH = import_graph(MODULES)
CYCLES = cycles(GRAPH)
NAMES = sorted(MODULES)


def test_the_package_is_found() -> None:
    """Guards the rules below against passing vacuously on an empty or misread tree."""
    assert {"arbiter.domain.events", "arbiter.adapters.bus", "arbiter.services"} <= set(MODULES)
    assert len(MODULES) > 50


@pytest.mark.parametrize("name", NAMES)
def test_no_import_cycle(name: str) -> None:
    if name in CYCLES:
        pytest.fail("import cycle: " + " -> ".join(CYCLES[name]), pytrace=False)


@pytest.mark.parametrize("name", NAMES)
def test_module_size(name: str) -> None:
    lines = line_count(MODULES[name])
    if lines > MAX_LINES:
        where = MODULES[name].path.relative_to(ROOT)
        pytest.fail(f"{where}: {lines} lines (at most {MAX_LINES})", pytrace=False)


@pytest.mark.parametrize("name", [n for n in NAMES if n == DOMAIN or n.startswith(DOMAIN + ".")])
def test_domain_is_pure(name: str) -> None:
    bad = impure_imports(MODULES[name], MODULES)
    if bad:
        where = MODULES[name].path.relative_to(ROOT)
        pytest.fail(f"{where} imports I/O or another layer: " + "; ".join(bad), pytrace=False)


@pytest.mark.parametrize("name", NAMES)
def test_public_module_declares_exports(name: str) -> None:
    problems = export_problems(MODULES[name], MODULES)
    if problems:
        where = MODULES[name].path.relative_to(ROOT)
        pytest.fail(f"{where}: " + "; ".join(problems), pytrace=False)


# ---------------------------------------------------------------------------------------------
# The checker itself, on small synthetic trees: each rule can fail, and passes when it should
# ---------------------------------------------------------------------------------------------


def tree(tmp_path: Path, files: Mapping[str, str]) -> dict[str, Module]:
    """A package laid out like Arbiter's (``arbiter.domain`` = ``domain/``, ...) from ``files``."""
    (tmp_path / "pyproject.toml").write_text(
        "[tool.setuptools.package-dir]\n"
        '"arbiter" = "arbiter"\n"arbiter.domain" = "domain"\n"arbiter.adapters" = "adapters"\n'
    )
    for folder in ("arbiter", "domain", "adapters"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("__all__: list[str] = []\n")
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return discover(package_dirs(tmp_path / "pyproject.toml"))


def test_discover_maps_directories_to_dotted_names(tmp_path: Path) -> None:
    modules = tree(
        tmp_path,
        {"domain/sub/__init__.py": "", "domain/sub/x.py": "", "domain/plain/y.py": ""},
    )
    assert set(modules) == {
        "arbiter",
        "arbiter.domain",
        "arbiter.adapters",
        "arbiter.domain.sub",
        "arbiter.domain.sub.x",
    }  # domain/plain has no __init__.py: not a package, not installed
    assert modules["arbiter.domain.sub"].is_package
    assert modules["arbiter.domain.sub.x"].package == "arbiter.domain.sub"


def test_a_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    modules = tree(
        tmp_path,
        {
            "adapters/a.py": "from arbiter.adapters.b import thing\n",
            "adapters/b.py": "def thing():\n    from . import a\n    return a\n",
            "adapters/c.py": "import arbiter.adapters.a\n",  # into the cycle, not in it
        },
    )
    found = cycles(import_graph(modules))
    assert found == {
        "arbiter.adapters.a": ["arbiter.adapters.a", "arbiter.adapters.b", "arbiter.adapters.a"],
        "arbiter.adapters.b": ["arbiter.adapters.b", "arbiter.adapters.a", "arbiter.adapters.b"],
    }


def test_a_longer_cycle_and_a_self_import_are_named(tmp_path: Path) -> None:
    modules = tree(
        tmp_path,
        {
            "adapters/a.py": "from arbiter.adapters import b\n",  # b is a submodule: edge to it
            "adapters/b.py": "from .c import x\n",
            "adapters/c.py": "from ..adapters.a import y\nx = 1\n",
            "domain/me.py": "import arbiter.domain.me\n",
        },
    )
    found = cycles(import_graph(modules))
    assert found["arbiter.adapters.b"] == [
        "arbiter.adapters.b",
        "arbiter.adapters.c",
        "arbiter.adapters.a",
        "arbiter.adapters.b",
    ]
    assert found["arbiter.domain.me"] == ["arbiter.domain.me", "arbiter.domain.me"]
    assert set(found) == {
        "arbiter.adapters.a",
        "arbiter.adapters.b",
        "arbiter.adapters.c",
        "arbiter.domain.me",
    }


def test_a_package_reexporting_its_modules_is_no_cycle(tmp_path: Path) -> None:
    modules = tree(
        tmp_path,
        {
            "domain/pkg/__init__.py": "from .part import f\n__all__ = ['f']\n",
            "domain/pkg/part.py": "from arbiter.domain.pkg.other import g\ndef f(): ...\n",
            "domain/pkg/other.py": "def g(): ...\n",
        },
    )
    assert cycles(import_graph(modules)) == {}
    # ...but a module of the package importing a name from the package's __init__ is one.
    (tmp_path / "domain/pkg/other.py").write_text("from arbiter.domain.pkg import f\n")
    assert set(cycles(import_graph(modules))) == {
        "arbiter.domain.pkg",
        "arbiter.domain.pkg.part",
        "arbiter.domain.pkg.other",
    }


def test_an_oversized_module_is_counted(tmp_path: Path) -> None:
    modules = tree(
        tmp_path,
        {"domain/big.py": "x = 1\n" * (MAX_LINES + 1), "domain/ok.py": "x = 1\n" * MAX_LINES},
    )
    assert line_count(modules["arbiter.domain.big"]) == MAX_LINES + 1
    assert line_count(modules["arbiter.domain.ok"]) == MAX_LINES


def test_impure_domain_imports_are_refused(tmp_path: Path) -> None:
    modules = tree(
        tmp_path,
        {
            "domain/events.py": "X = 1\n",
            "domain/pure.py": (
                "from __future__ import annotations\nimport math\nimport numpy as np\n"
                "from msgspec import Struct\nfrom collections.abc import Mapping\n"
                "from .events import X\nfrom arbiter.domain import events\n"
            ),
            "domain/impure.py": (
                "import os\nfrom pathlib import Path\n"
                "def now():\n    import time\n    return time.time()\n"
                "from arbiter.adapters import bus\nfrom ..adapters.bus import publish\n"
                "import psycopg\n"
            ),
        },
    )
    assert impure_imports(modules["arbiter.domain.pure"], modules) == []
    assert impure_imports(modules["arbiter.domain.impure"], modules) == [
        "line 1: import os",
        "line 2: import pathlib.Path",
        "line 4: import time",
        "line 6: import arbiter.adapters.bus",
        "line 7: import arbiter.adapters.bus.publish",
        "line 8: import psycopg",
    ]


def test_exports_must_be_declared_and_defined(tmp_path: Path) -> None:
    modules = tree(
        tmp_path,
        {
            "adapters/none.py": "def f(): ...\n",
            "adapters/_private.py": "def f(): ...\n",
            "adapters/wrong.py": "from os import path\ndef f(): ...\n__all__ = ['f', 'path', 'g']",
            "adapters/computed.py": "__all__ = [n for n in dir()]\n",
            "adapters/right.py": (
                "try:\n    import json as codec\nexcept ImportError:\n    codec = None\n"
                "if codec:\n    class A: ...\nX: int = 1\n__all__ = ['A', 'X', 'codec']\n"
                "__all__ += ['later']\nlater = 2\n"
            ),
            "adapters/pkg/__init__.py": "__all__ = ['sub']\n",
            "adapters/pkg/sub.py": "__all__: list[str] = []\n",
        },
    )
    problems = {name: export_problems(m, modules) for name, m in modules.items()}
    assert problems["arbiter.adapters.none"] == [
        "no module-level __all__ (a public module states what it exports)"
    ]
    assert problems["arbiter.adapters.wrong"] == [
        "__all__ names 'g', which the module neither defines nor imports"
    ]
    assert problems["arbiter.adapters.computed"] == [
        "__all__ is not a literal list of strings (it cannot be checked)"
    ]
    for fine in ("_private", "right", "pkg", "pkg.sub"):
        assert problems[f"arbiter.adapters.{fine}"] == [], fine
