"""The `grite` entry: routing decisions and the lean import set on the daemon path."""

from __future__ import annotations

import subprocess
import sys

import pytest

from grite.cli.entry import runs_in_process


@pytest.mark.parametrize(
    ("argv", "env", "local"),
    [
        ([], {}, True),
        (["issue", "list"], {}, False),
        (["issue", "list", "--no-daemon"], {}, True),
        (["issue", "list"], {"GRITE_NO_DAEMON": "yes"}, True),
        (["--actor", "daemon", "issue", "list"], {}, False),
        (["--json", "daemon", "status"], {}, True),
        (["issue", "--help"], {}, True),
        (["--version"], {}, True),
    ],
)
def test_routing_decision(argv: list[str], env: dict[str, str], local: bool) -> None:
    assert runs_in_process(argv, env) is local


def test_entry_imports_nothing_heavy_before_deciding() -> None:
    code = (
        "import sys; floor = set(sys.modules); import grite.cli.entry;"
        "heavy = {'msgspec', 'typing', 'argh', 'dulwich', 'diskcache', 'cbor2', 'asyncio',"
        " 'hashlib', 'grite.ops', 'grite.storage', 'grite.cli.app', 'grite.ipc.protocol',"
        " 'subprocess', 'socket', 'json', 're', 'enum'};"
        "print(sorted((heavy & set(sys.modules)) - floor))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
