"""A `grite` command started while grite is being reinstalled waits for the installer.

pip upgrades a distribution by removing its files and then writing the new ones, so a command
started in between finds half of grite (tests/service/test_pip_install.py meets it under a
real upgrade). Here a real copy of the package, one module missing, stands in for that moment:
the command waits, imports the module once it is back, and answers; a module that never comes
back fails the command with the import error, after the wait.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import grite

SCRIPT = str(Path(__file__).resolve().parents[2] / "scripts" / "grite")


def _half_installed_copy(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    site = tmp_path / "site"
    shutil.copytree(
        Path(grite.__file__).parent, site / "grite", ignore=shutil.ignore_patterns("__pycache__")
    )
    missing = site / "grite" / "ipc" / "client.py"
    aside = tmp_path / "client.py"
    missing.rename(aside)
    env = {**os.environ, "PYTHONPATH": str(site), "GRITE_NO_DAEMON": "1"}
    return env, missing, aside


def _start(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, SCRIPT, "--version"],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_a_command_started_mid_upgrade_waits_for_the_files(tmp_path: Path) -> None:
    env, missing, aside = _half_installed_copy(tmp_path)
    proc = _start(env, tmp_path)
    # `grite --version` takes a few tens of milliseconds; still running after a second means
    # it is waiting for the missing module rather than having failed.
    time.sleep(1.0)  # fault injection timing: the "installer" writes the file a second later
    assert proc.poll() is None, proc.communicate()
    aside.rename(missing)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.strip() == f"grite {grite.__version__}"


def test_a_module_that_never_comes_back_fails_with_the_import_error(tmp_path: Path) -> None:
    env, _missing, _aside = _half_installed_copy(tmp_path)
    proc = _start(env, tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    assert "No module named 'grite.ipc.client'" in err
    assert out == ""
