"""The .deb from packaging/build-deb, installed with dpkg and used by a user who logs in after
the installation, with no per-user step, under a real systemd user manager; then upgraded to a
newer .deb while clients work, and removed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.service import steps
from tests.service.conftest import GriteUser, make_repo, version_of
from tests.service.manager import UserManager

UNITS = Path("/usr/lib/systemd/user")
WANTS = Path("/etc/systemd/user/sockets.target.wants/grite.socket")


def dpkg_status() -> str:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Status} ${Version}", "grite"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    return proc.stdout.strip()


def dpkg(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["dpkg", *args], capture_output=True, text=True, check=False, timeout=600,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive"},
    )  # fmt: skip
    assert proc.returncode == 0, f"dpkg {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def deb_installed(
    machine_lock: None, deb_packages: tuple[Path, Path, str]
) -> Iterator[tuple[Path, Path, str]]:
    if dpkg_status().startswith("install ok installed"):
        pytest.fail(
            "grite is already installed with dpkg on this machine; the service suite installs "
            "and removes it, so remove it first: dpkg --purge grite"
        )
    dpkg("--install", str(deb_packages[0]))
    try:
        yield deb_packages
    finally:
        if dpkg_status():
            dpkg("--purge", "grite")


@pytest.fixture(scope="module")
def deb_user(deb_installed: tuple[Path, Path, str]) -> Iterator[GriteUser]:
    # The user logs in (their manager starts) after the package is installed.
    manager = UserManager.create()
    try:
        manager.start()
        user = GriteUser(
            manager,
            "deb",
            path="",
            python="/usr/lib/grite/bin/python3",
            daemon="/usr/bin/grite-daemon",
        )
        make_repo(user)
        yield user
    finally:
        manager.stop()


def test_package_holds_the_commands_units_and_docs(deb_packages: tuple[Path, Path, str]) -> None:
    deb = deb_packages[0]
    listing = subprocess.run(
        ["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    names = {line.split()[5].lstrip(".") for line in listing.splitlines()}
    for path in (
        "/usr/bin/grite",
        "/usr/bin/grite-daemon",
        "/usr/lib/systemd/user/grite.socket",
        "/usr/lib/systemd/user/grite.service",
        "/usr/share/man/man1/grite.1.gz",
        "/usr/share/man/man8/grite-daemon.8.gz",
        "/usr/share/doc/grite/changelog.gz",
        "/usr/share/doc/grite/copyright",
        "/usr/share/doc/grite/bundled-python.txt",
        "/usr/lib/grite/pyvenv.cfg",
    ):
        assert path in names, path
    assert not [n for n in names if "__pycache__" in n], "bytecode is compiled by postinst"
    control = subprocess.run(
        ["dpkg-deb", "--field", str(deb), "Version", "Depends"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"Version: {version_of()}" in control
    assert "python3.11" in control


def test_socket_is_enabled_for_every_user_without_a_per_user_step(deb_user: GriteUser) -> None:
    m = deb_user.manager
    assert WANTS.is_symlink() and WANTS.resolve() == UNITS / "grite.socket"
    assert m.systemctl("is-enabled", "grite.socket").stdout.strip() == "enabled"
    assert m.unit_property("grite.socket", "FragmentPath") == str(UNITS / "grite.socket")
    assert m.unit_property("grite.service", "ExecStart").startswith(
        "{ path=/usr/bin/grite-daemon ; argv[]=/usr/bin/grite-daemon ;"
    )
    assert not (m.home / ".config" / "systemd").exists()


def test_first_command_starts_the_service_through_the_socket(deb_user: GriteUser) -> None:
    steps.first_command_starts_the_service(deb_user)


def test_200_commands_across_10_idle_exits(deb_user: GriteUser, counts: dict[str, Any]) -> None:
    steps.commands_across_idle_exits(deb_user, counts)


def test_restart_and_socket_stop_start_under_load(
    deb_user: GriteUser, counts: dict[str, Any]
) -> None:
    steps.restarts_and_socket_cycles_under_load(deb_user, counts)


def test_daemon_status_names_the_log_in_every_mode(deb_user: GriteUser) -> None:
    steps.status_names_the_log_in_every_mode(deb_user)


def test_manager_shows_ready_status_and_stopping(deb_user: GriteUser) -> None:
    steps.manager_shows_ready_status_and_stopping(deb_user)


def test_upgrade_to_a_newer_deb_while_serving(
    deb_user: GriteUser, deb_installed: tuple[Path, Path, str], counts: dict[str, Any]
) -> None:
    _, bumped, version = deb_installed
    steps.upgrade_while_serving(
        deb_user, counts, lambda: dpkg("--install", str(bumped)), new_version=version
    )
    assert dpkg_status() == f"install ok installed {version}"


def test_removal_leaves_no_unit_socket_or_daemon(deb_user: GriteUser) -> None:
    m = deb_user.manager
    deb_user.ok("issue", "list")  # a daemon is running when the package goes
    assert deb_user.daemon_processes()
    deb_user.remove_dropin()  # the test's own drop-in, not the package's
    dpkg("--remove", "grite")
    steps.nothing_left(deb_user)
    assert not (UNITS / "grite.socket").exists() and not (UNITS / "grite.service").exists()
    assert not Path("/usr/bin/grite").exists() and not Path("/usr/bin/grite-daemon").exists()
    assert m.run(["sh", "-c", "command -v grite"]).returncode != 0
    dpkg("--purge", "grite")
    assert not WANTS.exists() and not WANTS.is_symlink()
    assert not Path("/usr/lib/grite").exists()
    assert dpkg_status() == ""
