"""grite.model.display.printable: what a hostile string looks like once it is safe to print."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grite.model.display import printable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain title", "plain title"),
        ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # erase screen, cursor home
        ("\x1b]52;c;aGk=\x07", "\\x1b]52;c;aGk=\\x07"),  # OSC 52 clipboard write
        (
            "\x1b]8;;http://evil\x1b\\x\x1b]8;;\x1b\\",
            "\\x1b]8;;http://evil\\x1b\\x\\x1b]8;;\\x1b\\",
        ),
        ("ok\rFAKE", "ok\\rFAKE"),
        ("a\nb\tc", "a\\nb\\tc"),
        ("\x9b31m", "\\x9b31m"),  # C1 CSI
        ("\x7f\x00", "\\x7f\\x00"),
        ("abc\u202edcb", "abc\\u202edcb"),  # right-to-left override
        ("\u2066x\u2069", "\\u2066x\\u2069"),
        ("line\u2028sep", "line\\u2028sep"),
        ("naïve ünïcödé 日本 🎉", "naïve ünïcödé 日本 🎉"),
    ],
)
def test_one_line_fields_show_every_control_escaped(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_multi_line_fields_keep_newlines_and_tabs_only() -> None:
    assert printable("a\nb\tc\r\x1b[1A", multiline=True) == "a\nb\tc\\r\\x1b[1A"


@given(st.text())
def test_the_result_never_holds_a_control_character(text: str) -> None:
    for multiline in (False, True):
        shown = printable(text, multiline=multiline)
        allowed = "\n\t" if multiline else ""
        assert all(
            ch in allowed
            or not (ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or ch in "\u202e\u202d\u2066")
            for ch in shown
        )
