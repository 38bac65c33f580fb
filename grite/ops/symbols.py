"""Symbol extraction for `grite context index`: tree-sitter grammars from PyPI, with the
regular-expression fallback of grite.model.symbol_patterns.

The grammars are the individual `tree-sitter-<lang>` wheels (one small abi3 wheel each, about
17 MB for all of them with the `tree-sitter` bindings) rather than `tree-sitter-language-pack`:
the pack's 1.x releases download their grammars from the network on first use, which fails
offline and in CI, and its last self-contained release (0.13) installs about 184 MB for 300+
languages we never parse. With separate wheels a Python-only repository loads one grammar.
Each language is loaded on first use and only inside this operation: the CLI's client path
never imports tree-sitter.

The queries, kinds and ordering are grite 0.5.3's
(https://github.com/neul-labs/grite, crates/libgrite-core/src/context/extractor/ts_engine.rs):
every match gives (name, kind, line span of the whole definition); results are sorted by
line, then by how specific the kind is, and a second match of the same name on the same line
is dropped. A grammar that is not installed, or whose node names no longer fit the query,
falls back to the patterns, as 0.5.3 falls back when its query fails.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from grite.model.events import Symbol
from grite.model.symbol_patterns import extract_with_patterns

__all__ = ["Extractor", "grammar_available"]

# Each grammar's loader imports its wheel when first called (only while indexing). Import
# statements, not module names in a table, so readers and dependency checkers see which
# declared dependency each language needs.


def _rust() -> Any:
    import tree_sitter_rust

    return tree_sitter_rust.language()


def _python() -> Any:
    import tree_sitter_python

    return tree_sitter_python.language()


def _typescript() -> Any:
    import tree_sitter_typescript

    return tree_sitter_typescript.language_typescript()


def _typescriptreact() -> Any:
    import tree_sitter_typescript

    return tree_sitter_typescript.language_tsx()


def _javascript() -> Any:
    import tree_sitter_javascript

    return tree_sitter_javascript.language()


def _go() -> Any:
    import tree_sitter_go

    return tree_sitter_go.language()


def _java() -> Any:
    import tree_sitter_java

    return tree_sitter_java.language()


def _c() -> Any:
    import tree_sitter_c

    return tree_sitter_c.language()


def _cpp() -> Any:
    import tree_sitter_cpp

    return tree_sitter_cpp.language()


def _ruby() -> Any:
    import tree_sitter_ruby

    return tree_sitter_ruby.language()


def _elixir() -> Any:
    import tree_sitter_elixir

    return tree_sitter_elixir.language()


# language -> its grammar's loader (returns the grammar pointer)
_GRAMMARS: dict[str, Callable[[], Any]] = {
    "rust": _rust,
    "python": _python,
    "typescript": _typescript,
    "typescriptreact": _typescriptreact,
    "javascript": _javascript,
    "go": _go,
    "java": _java,
    "c": _c,
    "cpp": _cpp,
    "ruby": _ruby,
    "elixir": _elixir,
}

_RUST = """
(function_item name: (identifier) @name) @definition
(struct_item name: (type_identifier) @name) @definition
(enum_item name: (type_identifier) @name) @definition
(trait_item name: (type_identifier) @name) @definition
(impl_item type: (type_identifier) @name) @definition
(const_item name: (identifier) @name) @definition
(type_item name: (type_identifier) @name) @definition
(static_item name: (identifier) @name) @definition
"""
_PYTHON = """
(function_definition name: (identifier) @name) @definition
(class_definition name: (identifier) @name) @definition
"""
_TYPESCRIPT = """
(function_declaration name: (identifier) @name) @definition
(class_declaration name: (type_identifier) @name) @definition
(interface_declaration name: (type_identifier) @name) @definition
(type_alias_declaration name: (type_identifier) @name) @definition
(enum_declaration name: (identifier) @name) @definition
(lexical_declaration
  (variable_declarator
    name: (identifier) @name
    value: (arrow_function)) @definition)
"""
_JAVASCRIPT = """
(function_declaration name: (identifier) @name) @definition
(class_declaration name: (identifier) @name) @definition
(lexical_declaration
  (variable_declarator
    name: (identifier) @name
    value: (arrow_function)) @definition)
"""
_GO = """
(function_declaration name: (identifier) @name) @definition
(method_declaration name: (field_identifier) @name) @definition
(type_declaration (type_spec name: (type_identifier) @name type: (struct_type))) @definition
(type_declaration (type_spec name: (type_identifier) @name type: (interface_type))) @definition
(type_declaration (type_spec name: (type_identifier) @name)) @definition
"""
_JAVA = """
(method_declaration name: (identifier) @name) @definition
(class_declaration name: (identifier) @name) @definition
(interface_declaration name: (identifier) @name) @definition
(enum_declaration name: (identifier) @name) @definition
(constructor_declaration name: (identifier) @name) @definition
"""
_C = """
(function_definition
  declarator: (function_declarator
    declarator: (identifier) @name)) @definition
(struct_specifier
  name: (type_identifier) @name) @definition
(enum_specifier
  name: (type_identifier) @name) @definition
(type_definition
  declarator: (type_identifier) @name) @definition
"""
_CPP = """
(function_definition
  declarator: (function_declarator
    declarator: (identifier) @name)) @definition
(class_specifier
  name: (type_identifier) @name) @definition
(struct_specifier
  name: (type_identifier) @name) @definition
(enum_specifier
  name: (type_identifier) @name) @definition
(namespace_definition
  name: (namespace_identifier) @name) @definition
"""
_RUBY = """
(method name: (identifier) @name) @definition
(class name: (constant) @name) @definition
(module name: (constant) @name) @definition
(singleton_method name: (identifier) @name) @definition
"""
_ELIXIR = """
(call
  target: (identifier) @_kw
  (arguments
    (call target: (identifier) @name))
  (#match? @_kw "^(def|defp)$")) @definition

(call
  target: (identifier) @_kw
  (arguments
    (identifier) @name)
  (#match? @_kw "^(def|defp)$")) @definition

(call
  target: (identifier) @_kw
  (arguments
    (alias) @name)
  (#match? @_kw "^defmodule$")) @definition
"""

# language -> (query, kind of each pattern in query order)
_QUERIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "rust": (_RUST, ("function", "struct", "enum", "trait", "impl", "const", "type", "static")),
    "python": (_PYTHON, ("function", "class")),
    "typescript": (_TYPESCRIPT, ("function", "class", "interface", "type", "enum", "function")),
    "typescriptreact": (
        _TYPESCRIPT,
        ("function", "class", "interface", "type", "enum", "function"),
    ),
    "javascript": (_JAVASCRIPT, ("function", "class", "function")),
    "go": (_GO, ("function", "function", "struct", "interface", "type")),
    "java": (_JAVA, ("method", "class", "interface", "enum", "method")),
    "c": (_C, ("function", "struct", "enum", "type")),
    "cpp": (_CPP, ("function", "class", "struct", "enum", "namespace")),
    "ruby": (_RUBY, ("function", "class", "module", "function")),
    "elixir": (_ELIXIR, ("function", "function", "module")),
}

_PRIORITY = {
    **dict.fromkeys(("struct", "class", "interface", "enum", "trait", "module", "namespace"), 0),
    **dict.fromkeys(("function", "method", "impl", "const", "static"), 1),
    "type": 2,
}


@cache
def _grammar(language: str) -> tuple[Any, Any] | None:
    """(tree_sitter.Language, compiled Query) for `language`, or None when the grammar is not
    installed or the query does not fit it. Loaded once per process; both are immutable and
    shared by threads (parsers and cursors are not: each Extractor has its own)."""
    load = _GRAMMARS.get(language)
    if load is None:
        return None
    try:
        # Deliberately lazy: tree-sitter and each grammar load only when a file of that
        # language is indexed.
        import tree_sitter
    except ImportError:
        return None
    try:
        lang = tree_sitter.Language(load())
        query = tree_sitter.Query(lang, _QUERIES[language][0])
    except ImportError:
        return None  # this language's grammar is not installed
    except (AttributeError, ValueError, TypeError, tree_sitter.QueryError):
        # A grammar of another ABI or with renamed nodes: the patterns take over.
        return None
    return lang, query


def grammar_available(language: str) -> bool:
    """Whether `language` is parsed with tree-sitter here (else the pattern fallback)."""
    return _grammar(language) is not None


class Extractor:
    """Extracts symbols for one indexing run; holds one parser per language. Not thread-safe."""

    def __init__(self) -> None:
        self._parsers: dict[str, Any] = {}

    def extract(self, content: bytes, language: str) -> list[Symbol]:
        """Symbols of one file in 0.5.3's order (by line, most specific kind first).

        Args:
            content: the file's bytes (UTF-8 text).
            language: a language of grite.model.context.detect_language.
        """
        grammar = _grammar(language)
        symbols = None if grammar is None else self._tree_sitter(content, language, grammar)
        if symbols is None:
            return extract_with_patterns(content.decode("utf-8", "replace"), language)
        return symbols

    def _tree_sitter(
        self, content: bytes, language: str, grammar: tuple[Any, Any]
    ) -> list[Symbol] | None:
        import tree_sitter  # already loaded by _grammar

        lang, query = grammar
        parser = self._parsers.get(language)
        if parser is None:
            parser = self._parsers[language] = tree_sitter.Parser(lang)
        tree = parser.parse(content)
        if tree is None:
            return None
        kinds = _QUERIES[language][1]
        found: list[Symbol] = []
        for pattern, captures in tree_sitter.QueryCursor(query).matches(tree.root_node):
            names = captures.get("name")
            if not names:
                continue
            name = names[-1]
            span = captures.get("definition") or names
            node = span[-1]
            found.append(
                Symbol(
                    name=(name.text or b"").decode("utf-8", "replace"),
                    kind=kinds[pattern] if pattern < len(kinds) else "unknown",
                    line_start=node.start_point.row + 1,
                    line_end=node.end_point.row + 1,
                )
            )
        found.sort(key=lambda s: (s.line_start, _PRIORITY.get(s.kind, 3)))
        kept: list[Symbol] = []
        for s in found:
            # Consecutive duplicates only, like Rust's Vec::dedup_by after the sort.
            if kept and kept[-1].line_start == s.line_start and kept[-1].name == s.name:
                continue
            kept.append(s)
        return kept
