"""grite installed with pip into the user's own virtual environment and activated with
`grite daemon install`, under a real systemd user manager; then upgraded in place with pip
while clients work, and uninstalled with `grite daemon uninstall`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.service import steps
from tests.service.conftest import GriteUser, make_repo
from tests.service.manager import UserManager

# pip replaces an installed distribution by first moving its files away (bin/grite included)
# and then writing the new ones. A command started in between may find no program at all,
# before any grite code runs: no installer-independent fix exists, and those are recognised
# here. One that finds half of the package waits for the installer (scripts/grite; more than
# its 5 s wait still ends as "No module named 'grite..."). Every other command must succeed.
_PIP_WINDOW = re.compile(
    r"env: .grite.: No such file or directory|No module named 'grite|can't open file .*/grite'"
)


def pip_install(user: GriteUser, wheels: Path, requirement: str, *extra: str) -> None:
    venv = Path(user.path).parent
    user.manager.run(
        ["/usr/bin/python3", "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--quiet", "--no-index", "--find-links", str(wheels), *extra, requirement],
        check=True, timeout=600,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pip_user(machine_lock: None, wheelhouse: tuple[Path, Path, str]) -> Iterator[GriteUser]:
    manager = UserManager.create()
    try:
        manager.start()
        venv = manager.home / "venvs" / "grite"
        manager.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
        user = GriteUser(
            manager,
            "pip",
            path=str(venv / "bin"),
            python=str(venv / "bin" / "python"),
            daemon=str(venv / "bin" / "grite-daemon"),
        )
        pip_install(user, wheelhouse[0], "grite")
        make_repo(user)
        yield user
    finally:
        manager.stop()


def test_daemon_install_enables_the_socket(pip_user: GriteUser) -> None:
    m = pip_user.manager
    out = m.run(["grite", "daemon", "install"], path=pip_user.path, check=True)
    assert "installed: systemd now starts grite-daemon on the first connection" in out.stdout
    units = m.home / ".config" / "systemd" / "user"
    assert f"ExecStart={pip_user.daemon}\n" in (units / "grite.service").read_text()
    assert m.systemctl("is-enabled", "grite.socket").stdout.strip() == "enabled"
    assert m.unit_property("grite.socket", "FragmentPath") == str(units / "grite.socket")


def test_first_command_starts_the_service_through_the_socket(pip_user: GriteUser) -> None:
    steps.first_command_starts_the_service(pip_user)


def test_200_commands_across_10_idle_exits(pip_user: GriteUser, counts: dict[str, Any]) -> None:
    steps.commands_across_idle_exits(pip_user, counts)


def test_restart_and_socket_stop_start_under_load(
    pip_user: GriteUser, counts: dict[str, Any]
) -> None:
    steps.restarts_and_socket_cycles_under_load(pip_user, counts)


def test_daemon_status_names_the_log_in_every_mode(pip_user: GriteUser) -> None:
    steps.status_names_the_log_in_every_mode(pip_user)


def test_manager_shows_ready_status_and_stopping(pip_user: GriteUser) -> None:
    steps.manager_shows_ready_status_and_stopping(pip_user)


def test_upgrade_with_pip_while_serving(
    pip_user: GriteUser, wheelhouse: tuple[Path, Path, str], counts: dict[str, Any]
) -> None:
    wheels, newer, version = wheelhouse
    steps.upgrade_while_serving(
        pip_user,
        counts,
        lambda: pip_install(
            pip_user, wheels, f"grite=={version}", "--upgrade", "--find-links", str(newer)
        ),
        new_version=version,
        program_missing=lambda stderr: bool(_PIP_WINDOW.search(stderr)),
    )


def test_uninstall_leaves_no_unit_socket_or_daemon(pip_user: GriteUser) -> None:
    m = pip_user.manager
    pip_user.ok("issue", "list")  # a daemon is running when the service goes
    pip_user.remove_dropin()  # the test's own drop-in
    out = m.run(["grite", "daemon", "uninstall"], path=pip_user.path, check=True)
    assert "uninstalled: systemd no longer starts grite-daemon" in out.stdout
    steps.nothing_left(pip_user)
    units = m.home / ".config" / "systemd" / "user"
    assert not (units / "grite.socket").exists() and not (units / "grite.service").exists()
