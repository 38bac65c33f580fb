"""The context store's pure rules against grite 0.5.3
(https://github.com/neul-labs/grite: crates/libgrite-core/src/context/mod.rs for the ids,
context/extractor/mod.rs for detect_language and generate_summary, context/extractor/
regex_fallback.rs for the fallback)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grite.model.context import (
    PROJECT_CONTEXT_ID,
    ContextChanges,
    context_issue_id,
    context_of,
    detect_language,
    file_summary,
    merge_context_event,
)
from grite.model.events import ContextUpdated, ProjectContextUpdated, Symbol
from grite.model.hashing import make_event
from grite.model.symbol_patterns import extract_with_patterns


def test_file_context_id_is_blake2b_128_of_the_prefixed_path() -> None:
    # grite 0.5.3 hashes with a 16-byte BLAKE2b digest, not a truncated longer one:
    # https://github.com/neul-labs/grite/blob/main/crates/libgrite-core/src/context/mod.rs
    assert context_issue_id("src/main.rs").hex() == "e4033aa4f24d201bea69fdc78c8c3c1f"
    assert PROJECT_CONTEXT_ID == b"\xff" * 16


@pytest.mark.parametrize(
    ("path", "language"),
    [
        # extractor/mod.rs test_detect_language, plus the other extensions of detect_language.
        ("src/main.rs", "rust"),
        ("app.py", "python"),
        ("index.ts", "typescript"),
        ("component.tsx", "typescriptreact"),
        ("main.go", "go"),
        ("Main.java", "java"),
        ("main.c", "c"),
        ("x.h", "c"),
        ("main.cpp", "cpp"),
        ("a.hpp", "cpp"),
        ("a.cc", "cpp"),
        ("a.cxx", "cpp"),
        ("app.rb", "ruby"),
        ("lib.ex", "elixir"),
        ("test.exs", "elixir"),
        ("x.jsx", "javascript"),
        ("x.js", "javascript"),
        ("README.md", "unknown"),
        ("Makefile", "unknown"),
        (".rs", "unknown"),  # Rust's Path::extension: a leading dot is no extension
        ("dir.py/file", "unknown"),
        ("a.PY", "unknown"),  # extensions are case-sensitive
    ],
)
def test_language_by_extension(path: str, language: str) -> None:
    assert detect_language(path) == language


def _sym(name: str, kind: str, line: int = 1) -> Symbol:
    return Symbol(name=name, kind=kind, line_start=line, line_end=line)


def test_summary_wording_is_0_5_3s() -> None:
    # extractor/mod.rs test_generate_summary and test_generate_summary_tsx.
    symbols = [_sym("Config", "struct"), _sym("new", "function"), _sym("load", "function")]
    assert file_summary("src/config.rs", symbols, "rust") == "defines Config; 2 functions"
    assert file_summary("src/App.tsx", [_sym("App", "function")], "typescriptreact") == (
        "1 functions"
    )
    assert file_summary("a.ts", [], "typescriptreact") == "typescript file"
    assert file_summary("a.rs", [], "rust") == "rust file"
    many = [
        _sym(n, k) for n, k in [("A", "class"), ("B", "struct"), ("C", "interface"), ("D", "class")]
    ]
    assert file_summary("x.py", many, "python") == "defines A, B, C (+1 more)"
    assert file_summary("lib/x.rs", [_sym("MAX", "const")], "rust") == "x.rs (rust)"


def _ctx_event(path: str, ts: int, actor: int, name: str) -> object:
    kind = ContextUpdated(
        path=path, language="python", symbols=[_sym(name, "function")], summary="s",
        content_hash=bytes(32),
    )  # fmt: skip
    return make_event(
        issue_id=context_issue_id(path), actor=bytes([actor]) * 16, ts_unix_ms=ts, kind=kind
    )


_events = st.lists(
    st.tuples(
        st.sampled_from(["a.py", "b.py"]),
        st.integers(0, 3),
        st.integers(0, 2),
        st.sampled_from("xyz"),
    ),
    max_size=8,
).map(lambda items: [_ctx_event(*item) for item in items])


@given(_events)
def test_merge_is_last_writer_wins_in_any_order(events: list) -> None:  # type: ignore[type-arg]
    results = set()
    for order in itertools.islice(itertools.permutations(events), 6):
        changes = context_of(list(order))
        results.add(
            tuple(sorted((p, fc.version, fc.symbols[0].name) for p, fc in changes.files.items()))
        )
    assert len(results) <= 1
    if events:
        newest = max(events, key=lambda e: e.version)  # type: ignore[attr-defined]
        path = newest.kind.path  # type: ignore[attr-defined]
        assert context_of(events).files[path].version == newest.version  # type: ignore[attr-defined]


def test_project_entries_merge_per_key() -> None:
    def set_(key: str, value: str, ts: int) -> object:
        return make_event(
            issue_id=PROJECT_CONTEXT_ID, actor=b"\x01" * 16, ts_unix_ms=ts,
            kind=ProjectContextUpdated(key=key, value=value),
        )  # fmt: skip

    changes = ContextChanges()
    for e in [set_("k", "new", 2), set_("k", "old", 1), set_("j", "v", 1)]:
        merge_context_event(changes, e, lambda _p: None, lambda _k: None)  # type: ignore[arg-type]
    assert {k: v.value for k, v in changes.project.items()} == {"k": "new", "j": "v"}


def _names(content: str, language: str) -> list[tuple[str, str, int, int]]:
    return [
        (s.name, s.kind, s.line_start, s.line_end) for s in extract_with_patterns(content, language)
    ]


def test_pattern_fallback_matches_0_5_3s_regexes() -> None:
    # regex_fallback.rs: kinds, start lines, the end estimate (next blank line, else 10 lines,
    # at most 50), Go's struct-over-type dedup and TS's const/arrow dedup.
    rust = (
        "pub struct Config {\n    a: u8,\n}\n\npub(crate) async fn load() {}\nimpl<T> Config {}\n"
    )
    assert _names(rust, "rust") == [
        ("Config", "struct", 1, 3),
        ("load", "function", 5, 15),
        ("Config", "impl", 6, 16),
    ]
    python = "class A:\n    def f(self):\n        pass\n\nasync def g():\n    pass\n"
    assert _names(python, "python") == [
        ("A", "class", 1, 3),
        ("f", "function", 2, 3),
        ("g", "function", 5, 15),
    ]
    go = "type Config struct {\n}\n\nfunc (s *Server) Start() {}\n"
    assert _names(go, "go") == [("Config", "struct", 1, 2), ("Start", "function", 4, 14)]
    ts = "export const fetchData = async (u) => 1;\nexport interface I {}\n"
    assert _names(ts, "typescript") == [("fetchData", "const", 1, 11), ("I", "interface", 2, 12)]
    assert _names("def f(): pass", "java") == []
