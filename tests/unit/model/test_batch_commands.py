"""`grite batch`'s command list is generated from the args Structs: the man page carries the
same list, every operation the CLI runs is in it, and its JSON examples render intact."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from grite.model.batch_commands import COMMANDS, check, describe, mdoc_list
from grite.model.errors import InvalidArgs
from grite.ops.table import OPERATIONS

MAN = Path(__file__).resolve().parents[3] / "man" / "grite.1"


def test_every_operation_is_a_batch_command_and_nothing_else() -> None:
    assert {t.__struct_config__.tag for t in OPERATIONS} == set(COMMANDS)


def test_the_man_page_lists_exactly_the_generated_command_types() -> None:
    text = MAN.read_text()
    block = re.search(
        r'\.\\" BEGIN batch command types[^\n]*\n(.*?)\.\\" END batch command types', text, re.S
    )
    assert block is not None
    assert block.group(1) == mdoc_list(), "run: update man/grite.1 from mdoc_list()"


def test_help_names_every_type_and_key() -> None:
    text = describe()
    for tag, struct in COMMANDS.items():
        assert f"\n  {tag}\n" in f"\n{text}"
        for field in struct.__struct_fields__:
            assert f"      {field} (" in text


def test_man_page_json_examples_render_with_their_quotes() -> None:
    if shutil.which("mandoc") is None:
        pytest.fail("mandoc is missing (.ci/run installs it)")
    out = subprocess.run(
        ["mandoc", "-Tascii", str(MAN)], capture_output=True, text=True, check=True
    ).stdout
    plain = re.sub(".\b", "", out)
    for example in (
        '{"type": "issue_show", "issue": "abcd"}',
        '{"type": "issue_create", "title": "T", "labels": ["bug"]}',
        '{"hookSpecificOutput": {"hookEventName": "SessionStart",',
        '{"schema_version":1,"ok":true,"data":{...}}',
    ):
        assert example in plain, example


def test_a_wrong_key_names_the_line_and_the_key() -> None:
    with pytest.raises(InvalidArgs) as exc:
        check(7, {"type": "issue_show", "issue": "abcd", "isue": "x"})
    assert exc.value.details == {"line": 7, "type": "issue_show", "key": "isue"}
    assert check(1, {"type": "issue_show", "issue": "abcd"}) == COMMANDS["issue_show"](issue="abcd")
