"""Architecture checks over the source tree with `ast`: the picture in docs/architecture.md.

Imports point down (model <- storage <- ops <- ipc, daemon, cli; client <- cli), with two
stated exceptions (the in-process transport runs operations; the daemon runs a forwarded argv
through the CLI's parser); every package has a rule and every rule names something that exists;
only storage touches dulwich and diskcache; only a few named modules read the environment; no
import cycles between modules or between packages; package `__all__` lists stay sorted. Each
checker also runs on a small synthetic tree, so these tests are known to fail when the rule is
broken.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import grite

# Modules allowed to read the process environment (os.environ, os.getenv and friends). Every
# other module is handed the mapping it needs (an Invocation's env, Policy.from_environ).
# grite/daemon/sd_notify.py reads NOTIFY_SOCKET for sd_notify, as its module docstring declares.
ENV_READERS = frozenset(
    {
        "grite/cli/entry.py",
        "grite/storage/config.py",
        "grite/daemon/activation.py",
        "grite/daemon/main.py",
        "grite/daemon/sd_notify.py",
        "grite/ipc/paths.py",
        "grite/ipc/transport.py",
    }
)

# Which grite modules each package may import (a prefix allows its submodules too). The
# picture (README.md "Layout", docs/architecture.md):
#   model <- storage <- ops <- ipc, daemon, cli;  client <- cli;  grite (the package) <- client
LAYER_RULES: dict[str, tuple[str, ...]] = {
    "model": ("grite.model",),
    "storage": ("grite.model", "grite.storage"),
    "ops": ("grite.model", "grite.storage", "grite.ops"),
    # The client's hot path: the lean wire codec and framing, transport, paths, spawner.
    "ipc": ("grite.model", "grite.ipc"),
    "daemon": ("grite.model", "grite.storage", "grite.ops", "grite.ipc", "grite.daemon"),
    "client": ("grite.model", "grite.ipc", "grite.ops"),
    "cli": (
        "grite",  # the package itself, for its version
        "grite.model",
        "grite.storage",
        "grite.ops",
        "grite.ipc",
        "grite.client",
        "grite.cli",
    ),
    "grite": ("grite.client",),
    "__main__": ("grite.cli",),
}

# Single modules allowed one import beyond their package's rule, each for one stated reason.
MODULE_EXCEPTIONS: dict[str, tuple[str, ...]] = {
    # The in-process transport runs operations (loaded only when the daemon is not used).
    "grite.ipc.local": ("grite.ops", "grite.storage"),
    # The daemon runs a forwarded command line through the CLI's parser, the way Mercurial's
    # chg server runs hg's dispatch: the one place the daemon imports grite.cli.
    "grite.daemon.handlers.commands": ("grite.cli.app",),
}

# Third-party packages only one layer may import.
RESTRICTED_IMPORTS: dict[str, str] = {"dulwich": "storage", "diskcache": "storage"}

_ENV_NAMES = frozenset({"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"})

REPO_ROOT = Path(__file__).resolve().parents[2]


# --- the analysis ----------------------------------------------------------------------------


def _modules(root: Path) -> dict[str, Path]:
    """Every module under `root/grite`, by dotted name (packages named without `__init__`)."""
    found: dict[str, Path] = {}
    for path in sorted((root / "grite").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, type_only: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """All nodes below `node`, each with whether it sits under `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            yield child, type_only
            for stmt in child.body:
                yield stmt, True
                yield from _walk(stmt, True)
            for stmt in child.orelse:
                yield stmt, type_only
                yield from _walk(stmt, type_only)
        else:
            yield child, type_only
            yield from _walk(child, type_only)


class _Import:
    def __init__(self, target: str, line: int, type_only: bool) -> None:
        self.target = target
        self.line = line
        self.type_only = type_only


def _imports(name: str, path: Path, known: dict[str, Path]) -> list[_Import]:
    """Absolute module names imported by module `name`, resolving relative imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    result: list[_Import] = []
    for node, type_only in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                result.append(_Import(alias.name, node.lineno, type_only))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                result.append(_Import(sub if sub in known else base, node.lineno, type_only))
    return result


def _allowed(target: str, prefixes: tuple[str, ...]) -> bool:
    # "grite" allows the package itself (grite.__version__), not everything below it.
    return any(target == p or (p != "grite" and target.startswith(p + ".")) for p in prefixes)


def _layer(name: str) -> str:
    """The package a module belongs to: `model` for grite.model.x, `client` for grite.client,
    `grite` for the package itself."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_violations(root: Path) -> list[str]:
    known = _modules(root)
    problems = []
    for name, path in known.items():
        layer = _layer(name)
        allowed = LAYER_RULES.get(layer)
        where_file = path.relative_to(root)
        if allowed is None:
            problems.append(f"{where_file}: package grite.{layer} has no rule in LAYER_RULES")
            continue
        allowed = allowed + MODULE_EXCEPTIONS.get(name, ())
        for imp in _imports(name, path, known):
            top = imp.target.split(".")[0]
            where = f"{where_file}:{imp.line}"
            if top == "grite" and not _allowed(imp.target, allowed):
                problems.append(f"{where}: grite.{layer} must not import {imp.target}")
            if top in RESTRICTED_IMPORTS and layer != RESTRICTED_IMPORTS[top]:
                problems.append(f"{where}: only grite.{RESTRICTED_IMPORTS[top]} may import {top}")
    return problems


def stale_entries(root: Path) -> list[str]:
    """Names in the rules above that match no file or module of the tree."""
    known = _modules(root)
    stale = [f for f in sorted(ENV_READERS) if not (root / f).is_file()]
    stale += [m for m in MODULE_EXCEPTIONS if m not in known]
    layers = {_layer(name) for name in known}
    stale += [layer for layer in LAYER_RULES if layer not in layers]
    return stale


def package_cycles(root: Path) -> list[list[str]]:
    """Cycles between packages (grite.cli -> grite.daemon -> grite.cli), local imports counted."""
    known = _modules(root)
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        for imp in _imports(name, path, known):
            if imp.type_only or imp.target not in known:
                continue
            src, dst = _layer(name), _layer(imp.target)
            if src != dst:
                edges.setdefault(src, set()).add(dst)
    return _cycles({k: sorted(v) for k, v in edges.items()})


def env_violations(root: Path) -> list[str]:
    problems = []
    for path in sorted((root / "grite").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in ENV_READERS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        os_names = {"os"}
        for node, _ in _walk(tree):
            if isinstance(node, ast.Import):
                os_names.update(a.asname for a in node.names if a.name == "os" and a.asname)
        for node, _ in _walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "os":
                for alias in node.names:
                    if alias.name in _ENV_NAMES:
                        problems.append(f"{rel}:{node.lineno}: imports os.{alias.name}")
            elif (
                isinstance(node, ast.Attribute)
                and node.attr in _ENV_NAMES
                and isinstance(node.value, ast.Name)
                and node.value.id in os_names
            ):
                problems.append(f"{rel}:{node.lineno}: reads os.{node.attr}")
    return problems


def import_cycles(root: Path) -> list[list[str]]:
    """Cycles among grite modules, counting local imports but not TYPE_CHECKING ones."""
    known = _modules(root)
    graph = {
        name: sorted(
            {i.target for i in _imports(name, path, known) if not i.type_only and i.target in known}
            - {name}
        )
        for name, path in known.items()
    }
    return _cycles(graph)


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """The cycles a depth-first walk of `graph` meets (each back edge once)."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    for root_name in graph:
        if root_name in state:
            continue
        path: list[str] = []
        stack: list[tuple[str, Iterator[str]]] = [(root_name, iter(graph[root_name]))]
        state[root_name] = 1
        path.append(root_name)
        while stack:
            node, successors = stack[-1]
            nxt = next(successors, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(graph.get(nxt, []))))
    return cycles


# The daemon stays in parts: a class that grows past this is doing two jobs, and a constructor
# that takes more settings than this wants a config Struct (grite.daemon.service.ServiceConfig).
MAX_CLASS_LINES = 250
MAX_INIT_PARAMETERS = 8
SIZE_CHECKED = ("grite/daemon",)


def oversized_classes(root: Path) -> list[str]:
    """Classes under SIZE_CHECKED longer than MAX_CLASS_LINES or whose __init__ takes more
    than MAX_INIT_PARAMETERS parameters (self not counted)."""
    problems = []
    for top in SIZE_CHECKED:
        for path in sorted((root / top).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.ClassDef):
                    continue
                where = f"{path.relative_to(root)}:{node.lineno} {node.name}"
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_CLASS_LINES:
                    problems.append(f"{where}: {lines} lines")
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                        a = item.args
                        count = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) - 1
                        if count > MAX_INIT_PARAMETERS:
                            problems.append(f"{where}: __init__ takes {count} parameters")
    return problems


_SCREAMING = re.compile(r"[A-Z0-9_]+")


def _all_sort_key(name: str) -> tuple[int, list[object]]:
    # isort-style, as ruff's RUF022 sorts __all__: CONSTANTS, then Classes, then the rest,
    # each group in natural order (digits compared as numbers).
    if _SCREAMING.fullmatch(name) and any(c.isalpha() for c in name):
        group = 0
    elif name[:1].isupper():
        group = 1
    else:
        group = 2
    natural = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
    return group, natural


def _declared_all(path: Path) -> list[str] | None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                assert node.value is not None
                value = ast.literal_eval(node.value)
                return list(value)
    return None


def unsorted_alls(root: Path) -> list[str]:
    problems = []
    for path in sorted((root / "grite").rglob("__init__.py")):
        names = _declared_all(path)
        if names is not None and names != sorted(names, key=_all_sort_key):
            expected = sorted(names, key=_all_sort_key)
            problems.append(f"{path.relative_to(root)}: __all__ should be {expected}")
    return problems


# --- the rules on the real tree --------------------------------------------------------------


def test_the_source_tree_is_where_the_tests_look() -> None:
    assert (REPO_ROOT / "grite" / "model" / "events.py").is_file()
    assert Path(grite.__file__).resolve().parent == REPO_ROOT / "grite"


def test_layers_import_only_downwards() -> None:
    assert layer_violations(REPO_ROOT) == []


def test_only_allowed_modules_read_the_environment() -> None:
    assert env_violations(REPO_ROOT) == []


def test_grite_has_no_import_cycles() -> None:
    assert import_cycles(REPO_ROOT) == []


def test_packages_have_no_import_cycles() -> None:
    assert package_cycles(REPO_ROOT) == []


def test_daemon_classes_stay_small() -> None:
    assert oversized_classes(REPO_ROOT) == []


def test_size_checker_reports_a_long_class_and_a_wide_constructor(tmp_path: Path) -> None:
    long_body = "".join(f"    x{i} = {i}\n" for i in range(MAX_CLASS_LINES))
    wide = ", ".join(f"p{i}" for i in range(MAX_INIT_PARAMETERS + 1))
    root = _tree(
        tmp_path,
        {
            "grite/daemon/a.py": f"class Long:\n{long_body}",
            "grite/daemon/b.py": f"class Wide:\n    def __init__(self, {wide}):\n        pass\n",
            "grite/daemon/c.py": "class Fine:\n    def __init__(self, a, *, b):\n        pass\n",
        },
    )
    problems = oversized_classes(root)
    assert len(problems) == 2, problems
    assert "Long" in problems[0] and "Wide" in problems[1] and "9 parameters" in problems[1]


def test_the_rules_name_only_what_exists() -> None:
    assert stale_entries(REPO_ROOT) == []


def test_every_package_has_a_rule() -> None:
    packages = {_layer(name) for name in _modules(REPO_ROOT)}
    assert packages == set(LAYER_RULES), packages ^ set(LAYER_RULES)


def test_package_all_lists_are_sorted() -> None:
    assert unsorted_alls(REPO_ROOT) == []


def test_grite_all_is_sorted_and_complete() -> None:
    names = _declared_all(REPO_ROOT / "grite" / "__init__.py")
    assert names is not None, "grite/__init__.py must declare __all__"
    assert names == sorted(names, key=_all_sort_key)
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(grite, name), f"grite.__all__ names {name!r}, which grite does not define"
    tree = ast.parse((REPO_ROOT / "grite" / "__init__.py").read_text(encoding="utf-8"))
    public = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            public.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            public.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign):
            public.update(t.id for t in node.targets if isinstance(t, ast.Name))
    # `TYPE_CHECKING = False` is the import-free form of typing.TYPE_CHECKING, not surface.
    missing = {n for n in public if not n.startswith("_") and n not in names} - {"TYPE_CHECKING"}
    assert missing == set(), f"public names missing from grite.__all__: {sorted(missing)}"


# --- the checkers catch what they should -----------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for rel in list(files):
        for parent in Path(rel).parents:
            if parent.parts and parent.parts[0] == "grite":
                (tmp_path / parent / "__init__.py").touch()
    return tmp_path


@pytest.mark.parametrize(
    ("rel", "source", "expected"),
    [
        (
            "grite/model/a.py",
            "import grite.storage.wal\n",
            "grite.model must not import grite.storage.wal",
        ),
        ("grite/model/a.py", "from grite import ops\n", "grite.model must not import grite.ops"),
        (
            "grite/model/a.py",
            "from ..storage import wal\n",
            "grite.model must not import grite.storage.wal",
        ),
        (
            "grite/model/a.py",
            "from grite import __version__\n",
            "grite.model must not import grite",
        ),
        (
            "grite/ipc/a.py",
            "from grite.storage.wal import Wal\n",
            "grite.ipc must not import grite.storage",
        ),
        (
            "grite/storage/a.py",
            "from grite.ops import x\n",
            "grite.storage must not import grite.ops",
        ),
        ("grite/ops/a.py", "from grite.ipc import x\n", "grite.ops must not import grite.ipc"),
        (
            "grite/daemon/a.py",
            "from grite.cli.render import x\n",
            "must not import grite.cli.render",
        ),
        (
            "grite/daemon/a.py",
            "def f():\n    from grite.cli.app import run\n",
            "grite.daemon must not import grite.cli.app",  # only daemon/handlers/commands.py may
        ),
        (
            "grite/cli/a.py",
            "from grite.daemon import main\n",
            "grite.cli must not import grite.daemon",
        ),
        (
            "grite/client.py",
            "from grite.cli import app\n",
            "grite.client must not import grite.cli",
        ),
        ("grite/ipc/a.py", "from grite.ops import x\n", "grite.ipc must not import grite.ops"),
        ("grite/ops/a.py", "import dulwich.repo\n", "only grite.storage may import dulwich"),
        (
            "grite/cli/a.py",
            "def f():\n    import diskcache\n",
            "only grite.storage may import diskcache",
        ),
        (
            "grite/model/a.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from grite.ops import x\n",
            "grite.model must not import grite.ops",
        ),
    ],
)
def test_layer_checker_reports_violations(
    tmp_path: Path, rel: str, source: str, expected: str
) -> None:
    root = _tree(tmp_path, {rel: source, "grite/storage/wal.py": "", "grite/ops/__init__.py": ""})
    problems = layer_violations(root)
    assert any(expected in p for p in problems), problems


def test_layer_checker_accepts_allowed_imports(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "grite/model/a.py": "from grite.model.b import x\nfrom . import b\nimport msgspec\n",
            "grite/model/b.py": "x = 1\n",
            "grite/storage/wal.py": "import dulwich\nfrom grite.model import a\n",
            "grite/ops/x.py": "from grite.storage.wal import W\nfrom grite.model.b import x\n",
            "grite/daemon/handlers/commands.py": (
                "from grite.cli.app import run\nfrom grite.ops import x\n"
            ),
            "grite/cli/app.py": "from grite.ipc import y\nfrom grite.client import C\n",
            "grite/client.py": "from grite.ipc import y\n",
        },
    )
    assert layer_violations(root) == []


@pytest.mark.parametrize(
    "source",
    [
        "import os\nx = os.environ['HOME']\n",
        "import os\nx = os.getenv('HOME')\n",
        "import os as o\nx = o.environ.get('HOME')\n",
        "from os import environ\n",
        "from os import getenv as g\n",
        "def f():\n    import os\n    return os.environ\n",
    ],
)
def test_env_checker_reports_reads_outside_the_allow_list(tmp_path: Path, source: str) -> None:
    root = _tree(tmp_path, {"grite/ops/a.py": source, "grite/cli/entry.py": source})
    problems = env_violations(root)
    assert problems and all(p.startswith("grite/ops/a.py:") for p in problems), problems


def test_env_checker_ignores_other_os_names(tmp_path: Path) -> None:
    root = _tree(
        tmp_path, {"grite/ops/a.py": "import os\nx = os.path.join('a', 'b')\nenviron = {}\n"}
    )
    assert env_violations(root) == []


def test_cycle_checker_finds_cycles_including_local_imports(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "grite/ops/a.py": "from grite.ops import b\n",
            "grite/ops/b.py": "def f():\n    from grite.ops.a import x\n",
            "grite/ops/c.py": "from grite.ops import a\n",
        },
    )
    assert import_cycles(root) == [["grite.ops.a", "grite.ops.b", "grite.ops.a"]]


def test_cycle_checker_ignores_type_checking_imports(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "grite/ops/a.py": "from grite.ops import b\n",
            "grite/ops/b.py": "import typing\nif typing.TYPE_CHECKING:\n    from grite.ops.a import x\n",
        },
    )
    assert import_cycles(root) == []


def test_package_cycle_checker_finds_a_cycle_through_two_modules(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "grite/cli/a.py": "from grite.daemon import b\n",
            "grite/daemon/b.py": "x = 1\n",
            "grite/daemon/c.py": "def f():\n    from grite.cli import a\n",
        },
    )
    assert package_cycles(root) == [["cli", "daemon", "cli"]]


def test_package_cycle_checker_accepts_a_downward_graph(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "grite/cli/a.py": "from grite.ops import b\n",
            "grite/ops/b.py": "from grite.model import c\n",
            "grite/model/c.py": "x = 1\n",
        },
    )
    assert package_cycles(root) == []


def test_a_package_without_a_rule_is_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"grite/newpkg/a.py": "x = 1\n"})
    assert any("grite.newpkg has no rule" in p for p in layer_violations(root))


def test_stale_rule_entries_are_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"grite/model/a.py": "x = 1\n"})
    stale = stale_entries(root)
    assert "grite/cli/entry.py" in stale and "grite.ipc.local" in stale and "daemon" in stale


def test_all_checker_uses_isort_style_order(tmp_path: Path) -> None:
    good = '__all__ = ["MAX_2", "MAX_10", "Event", "Item2", "Item10", "decode", "encode"]\n'
    bad = '__all__ = ["decode", "Event"]\n'
    root = _tree(tmp_path, {"grite/ok/__init__.py": good, "grite/bad/__init__.py": bad})
    assert unsorted_alls(root) == ["grite/bad/__init__.py: __all__ should be ['Event', 'decode']"]
