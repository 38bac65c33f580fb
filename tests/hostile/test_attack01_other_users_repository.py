"""Attack 1: a repository owned by another local user.

The attacker (a real second user, made with useradd) owns a repository, plants symlinks to the
victim's ~/.bashrc at the names grite wrote temporary files under (`pydaemon.json.<pid>.tmp`,
`<file>.tmp.<pid>`, for every pid the next commands may get) and sets `core.sshCommand` to a
program of theirs. The victim (the test's uid) runs grite there, through the daemon and
in-process. Before: `.bashrc` was replaced by JSON naming the attacker's directory, and `grite
sync` ran the attacker's program as the victim. Now grite refuses the repository with git's
wording and fix (safe.directory), writes nothing there and runs nothing; once the victim adds
the repository to safe.directory (as git asks), grite works there, still never following a
planted name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Grite

ATTACKER = "grite-hostile-owner"
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"


def as_attacker(*argv: str, cwd: Path) -> None:
    subprocess.run(
        [RUNUSER, "-u", ATTACKER, "--", *argv], cwd=cwd, check=True, capture_output=True,
        timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )  # fmt: skip


@pytest.fixture
def attacker_repo() -> Iterator[Path]:
    assert os.geteuid() == 0, "a second user needs root (CI runs as root)"
    assert shutil.which("runuser") and shutil.which("useradd"), ".ci/run installs util-linux"
    if subprocess.run(["id", ATTACKER], capture_output=True, check=False).returncode != 0:
        subprocess.run(["useradd", "--no-create-home", ATTACKER], check=False)  # may race
    subprocess.run(["id", ATTACKER], capture_output=True, check=True)
    base = Path(tempfile.mkdtemp(prefix="gatk", dir="/tmp"))
    base.chmod(0o755)
    shutil.chown(base, ATTACKER, ATTACKER)
    try:
        repo = base / "repo"
        as_attacker("mkdir", str(repo), cwd=base)
        as_attacker("git", "init", "-q", str(repo), cwd=base)
        as_attacker("mkdir", "-p", str(repo / ".git" / "grite"), cwd=base)
        yield repo
    finally:
        shutil.rmtree(base, ignore_errors=True)


def plant(repo: Path, bashrc: Path, marker: Path) -> None:
    """The attacker's traps: symlinks at every temp name grite used, and a transport program."""
    grite_dir = repo / ".git" / "grite"
    first = max(int(p) for p in os.listdir("/proc") if p.isdigit())
    links = []
    for pid in range(first, first + 400):
        links += [f"pydaemon.json.{pid}.tmp", f"config.toml.tmp.{pid}"]
    script = "; ".join(f"ln -s {bashrc} {grite_dir / name}" for name in links)
    as_attacker("sh", "-c", script, cwd=repo)
    as_attacker("git", "config", "core.sshCommand", f"touch {marker}; false", cwd=repo)
    as_attacker("git", "remote", "add", "origin", "ssh://attacker.invalid/x.git", cwd=repo)


@pytest.mark.parametrize("mode", ["daemon", "local"])
def test_another_users_repository_is_refused_with_gits_fix(
    isolated_env: dict[str, str], attacker_repo: Path, mode: str
) -> None:
    home = Path(isolated_env["HOME"])
    bashrc = home / ".bashrc"
    bashrc.write_text("# the victim's shell start-up\n")
    marker = Path(tempfile.mkdtemp(prefix="gmk", dir="/tmp")) / "ran-as-victim"
    os.chmod(marker.parent, 0o777)
    plant(attacker_repo, bashrc, marker)
    before = sorted(os.listdir(attacker_repo / ".git" / "grite"))
    grite = Grite(isolated_env, mode)

    for args in (["issue", "list"], ["issue", "create", "--title", "x"], ["sync"], ["init"]):
        proc = grite.run(attacker_repo, *args)
        assert proc.returncode == 5, (args, proc.stdout, proc.stderr)
        assert "dubious ownership" in proc.stderr, proc.stderr
        assert f"git config --global --add safe.directory {attacker_repo}" in proc.stderr
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    code, error = grite.error(attacker_repo, "issue", "list")
    assert code == 5 and error["code"] == "environment"
    assert error["details"]["owner_uid"] == int(
        subprocess.run(["id", "-u", ATTACKER], capture_output=True, text=True).stdout
    )

    assert bashrc.read_text() == "# the victim's shell start-up\n"
    assert not marker.exists(), "the attacker's core.sshCommand ran as the victim"
    assert sorted(os.listdir(attacker_repo / ".git" / "grite")) == before
    shutil.rmtree(marker.parent)

    # The victim trusts it explicitly, as git asks: grite works there, and still follows no
    # planted name (temp files get random names, created O_EXCL | O_NOFOLLOW).
    subprocess.run(
        ["git", "config", "--global", "--add", "safe.directory", str(attacker_repo)],
        env=isolated_env, check=True, timeout=60,
    )  # fmt: skip
    assert (home / ".gitconfig").exists()
    created = grite.json(attacker_repo, "issue", "create", "--title", "trusted now")
    assert json.dumps(created)
    assert [i["title"] for i in grite.json(attacker_repo, "issue", "list")["issues"]] == [
        "trusted now"
    ]
    assert bashrc.read_text() == "# the victim's shell start-up\n"
    for name in os.listdir(attacker_repo / ".git" / "grite"):
        path = attacker_repo / ".git" / "grite" / name
        if path.is_symlink():
            assert os.readlink(path) == str(bashrc)  # the plants, untouched and unused
