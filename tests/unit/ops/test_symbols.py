"""Symbol extraction with the tree-sitter grammars installed from PyPI, against the cases of
grite 0.5.3's extractor tests (https://github.com/neul-labs/grite:
crates/libgrite-core/src/context/extractor/mod.rs and ts_engine.rs)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from grite.model.context import LANGUAGES, detect_language
from grite.ops.symbols import Extractor, grammar_available
from tests.integration.test_context import OTHER_LANGUAGES


def _extract(source: str, language: str) -> list[tuple[str, str, int, int]]:
    symbols = Extractor().extract(source.encode(), language)
    return [(s.name, s.kind, s.line_start, s.line_end) for s in symbols]


def test_every_language_of_0_5_3_has_a_grammar_here() -> None:
    # The wheels are dependencies of grite: none may silently fall back to the patterns.
    assert {
        lang: grammar_available(lang) for lang in (*LANGUAGES, "typescriptreact")
    } == dict.fromkeys((*LANGUAGES, "typescriptreact"), True)


@pytest.mark.parametrize("path", sorted(OTHER_LANGUAGES))
def test_names_0_5_3s_tests_require(path: str) -> None:
    source, names = OTHER_LANGUAGES[path]
    found = [name for name, *_ in _extract(source, detect_language(path))]
    assert set(names) <= set(found), found


def test_rust_line_ranges_and_specific_kinds_first() -> None:
    # ts_engine.rs test_rust_extraction / mod.rs test_rust_accurate_line_ranges.
    source = textwrap.dedent(
        """\
        pub struct Config {
            pub name: String,
            pub value: u32,
        }

        pub fn process(config: &Config) -> String {
            format!("{}: {}", config.name, config.value)
        }
        """
    )
    assert _extract(source, "rust") == [("Config", "struct", 1, 4), ("process", "function", 6, 8)]


def test_python_line_ranges() -> None:
    # mod.rs test_python_accurate_line_ranges: MyClass 1-6, standalone 8-9.
    source = (
        "class MyClass:\n    def __init__(self):\n        self.x = 0\n\n    def method(self):\n"
        "        return self.x\n\ndef standalone():\n    pass\n"
    )
    assert _extract(source, "python") == [
        ("MyClass", "class", 1, 6),
        ("__init__", "function", 2, 3),
        ("method", "function", 5, 6),
        ("standalone", "function", 8, 9),
    ]


def test_go_struct_wins_over_type_on_the_same_line() -> None:
    # ts_engine.rs: a struct type matches both the struct and the generic type pattern; the
    # more specific kind is kept.
    assert _extract("package p\n\ntype Config struct {\n}\n", "go") == [("Config", "struct", 3, 4)]


def test_unknown_language_has_no_symbols() -> None:
    assert _extract("fn main() {}", "brainfuck") == []  # mod.rs test_fallback_for_unknown_language


_BLOCKED = """
import sys
sys.modules["tree_sitter_go"] = None  # as if the wheel were not installed: ImportError
from grite.ops.symbols import Extractor, grammar_available
src = "func main() {\\n}\\n\\ntype Config struct {\\n    Name string\\n}\\n"
print(grammar_available("go"), grammar_available("rust"))
print([(s.name, s.kind, s.line_start) for s in Extractor().extract(src.encode(), "go")])
"""


def test_a_missing_grammar_falls_back_to_the_patterns() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _BLOCKED], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["False True", "[('main', 'function', 1), ('Config', 'struct', 4)]"]


_QUERY_ONLY = """
import os, sys, time
from grite.cli.app import run_invocation
from grite.model.invocation import Invocation
inv = Invocation(argv=["context", "query", "x", "--json"], cwd=sys.argv[1], env={},
                 request_id=os.urandom(16), now_ms=time.time_ns() // 10**6)
assert run_invocation(inv).exit_code == 0
print(sorted(m for m in sys.modules if m.startswith("tree_sitter")))
"""


def test_tree_sitter_loads_only_to_index(tmp_path: object) -> None:
    import pathlib

    repo = pathlib.Path(str(tmp_path)) / "r"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    out = subprocess.run(
        [sys.executable, "-c", _QUERY_ONLY, str(repo)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
