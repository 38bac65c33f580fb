"""Regular-expression symbol extraction: the fallback when no tree-sitter grammar is available
for a language (or its query does not compile against the installed grammar).

The patterns, kinds, line estimates and ordering are those of grite 0.5.3's fallback
(https://github.com/neul-labs/grite, crates/libgrite-core/src/context/extractor/
regex_fallback.rs), so a file indexed without grammars gets the symbols 0.5.3's fallback
gives: Rust, Python, TypeScript/JavaScript and Go; other languages get none.

Pure: imports only grite.model; no I/O.
"""

from __future__ import annotations

import re

from grite.model.events import Symbol

__all__ = ["extract_with_patterns"]

_PUB = r"(?:pub(?:\(.*?\))?\s+)?"

_RUST = (
    (re.compile(rf"(?m)^\s*{_PUB}(?:async\s+)?fn\s+(\w+)"), "function"),
    (re.compile(rf"(?m)^\s*{_PUB}struct\s+(\w+)"), "struct"),
    (re.compile(rf"(?m)^\s*{_PUB}enum\s+(\w+)"), "enum"),
    (re.compile(rf"(?m)^\s*{_PUB}trait\s+(\w+)"), "trait"),
    (re.compile(r"(?m)^\s*impl(?:<[^>]*>)?\s+(\w+)"), "impl"),
    (re.compile(rf"(?m)^\s*{_PUB}(?:const|static)\s+(\w+)"), "const"),
)
_PYTHON = (
    (re.compile(r"(?m)^(?:\s*)(?:async\s+)?def\s+(\w+)"), "function"),
    (re.compile(r"(?m)^class\s+(\w+)"), "class"),
)
_TS = (
    (re.compile(r"(?m)^\s*(?:export\s+)?(?:async\s+)?function\s+(\w+)"), "function"),
    (re.compile(r"(?m)^\s*(?:export\s+)?class\s+(\w+)"), "class"),
    (re.compile(r"(?m)^\s*(?:export\s+)?interface\s+(\w+)"), "interface"),
    (re.compile(r"(?m)^\s*(?:export\s+)?type\s+(\w+)"), "type"),
    (re.compile(r"(?m)^\s*(?:export\s+)?const\s+(\w+)"), "const"),
    (re.compile(r"(?m)^\s*(?:export\s+)?(?:const|let)\s+(\w+)\s*=\s*(?:async\s+)?\("), "function"),
)
_GO = (
    (re.compile(r"(?m)^func\s+(?:\(\w+\s+\*?\w+\)\s+)?(\w+)"), "function"),
    (re.compile(r"(?m)^type\s+(\w+)\s+struct"), "struct"),
    (re.compile(r"(?m)^type\s+(\w+)\s+interface"), "interface"),
    (re.compile(r"(?m)^type\s+(\w+)\s+\w"), "type"),
)
_PATTERNS = {
    "rust": _RUST,
    "python": _PYTHON,
    "typescript": _TS,
    "typescriptreact": _TS,
    "javascript": _TS,
    "go": _GO,
}
# Languages whose results are deduplicated by (line, name), as 0.5.3 does for TS/JS and Go.
_DEDUPLICATED = ("typescript", "typescriptreact", "javascript", "go")


def _matches(content: str, pattern: re.Pattern[str], kind: str) -> list[Symbol]:
    found = []
    for match in pattern.finditer(content):
        start, end = match.span(1)
        line_start = content.count("\n", 0, start) + 1
        # 0.5.3 estimates the end: the next blank line, else 10 lines, at most 50.
        blank = content.find("\n\n", end)
        lines_to_end = 10 if blank < 0 else content.count("\n", end, blank)
        found.append(
            Symbol(
                name=match.group(1),
                kind=kind,
                line_start=line_start,
                line_end=line_start + min(lines_to_end, 50),
            )
        )
    return found


def extract_with_patterns(content: str, language: str) -> list[Symbol]:
    """Symbols of `content` in line order; empty for a language without patterns."""
    symbols: list[Symbol] = []
    for pattern, kind in _PATTERNS.get(language, ()):
        symbols += _matches(content, pattern, kind)
    if language not in _DEDUPLICATED:
        symbols.sort(key=lambda s: s.line_start)
        return symbols
    symbols.sort(key=lambda s: (s.line_start, s.name))
    kept: list[Symbol] = []
    for s in symbols:
        # Consecutive duplicates only, like Rust's Vec::dedup_by.
        if kept and kept[-1].line_start == s.line_start and kept[-1].name == s.name:
            continue
        kept.append(s)
    return kept
