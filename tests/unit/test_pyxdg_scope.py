"""pyxdg, a declared dependency, is used where it belongs: the daemon's config search
(grite.storage.config.user_config_files), never the warm client path (cli entry, ipc.paths),
which pays for every import on every command."""

from __future__ import annotations

import subprocess
import sys


def modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"import sys\n{code}\nprint(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return set(out.stdout.split())


def test_client_path_does_not_import_pyxdg() -> None:
    loaded = modules_after(
        "import grite.cli.entry\nfrom grite.ipc.paths import runtime_paths\nruntime_paths()"
    )
    assert "grite.cli.entry" in loaded
    assert not {name for name in loaded if name == "xdg" or name.startswith("xdg.")}


def test_config_search_uses_pyxdg() -> None:
    loaded = modules_after(
        "from grite.storage.config import user_config_files\nuser_config_files()"
    )
    assert "xdg.BaseDirectory" in loaded
