"""`grite daemon install|uninstall` against a fake `systemctl` (and `launchctl`) on PATH.

No user service manager runs on a build machine, so the managers are tiny shell scripts that
record their argv and keep one bit of state (is grite.socket enabled); everything else is
real: files are written into a tmp XDG_CONFIG_HOME, commands run as subprocesses with timeouts,
and the CLI functions render text and JSON.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from grite.cli.service_commands import daemon_install, daemon_uninstall
from grite.cli.service_install import find_daemon, install, run_command, uninstall

FAKE_SYSTEMCTL = r"""#!/bin/sh
printf '%s\n' "$*" >> "$FAKE_LOG"
case "$*" in
  "--user show-environment")
    if [ -n "$FAKE_NO_MANAGER" ]; then
      echo "Failed to connect to bus: No medium found" >&2; exit 1
    fi
    echo "HOME=$HOME"; echo "XDG_RUNTIME_DIR=$FAKE_RUNTIME"; exit 0 ;;
  "--user enable --now grite.socket")
    if [ -n "$FAKE_ENABLE_FAILS" ]; then
      echo "Failed to enable unit: Unit file grite.socket does not exist." >&2; exit 1
    fi
    touch "$FAKE_STATE"; exit 0 ;;
  "--user disable --now grite.socket") rm -f "$FAKE_STATE"; exit 0 ;;
  "--user is-enabled grite.socket"|"--user is-active grite.socket")
    [ -f "$FAKE_STATE" ] && exit 0; exit 1 ;;
  *) exit 0 ;;
esac
"""

FAKE_LAUNCHCTL = r"""#!/bin/sh
printf '%s\n' "$*" >> "$FAKE_LOG"
case "$1" in
  bootstrap) touch "$FAKE_STATE"; exit 0 ;;
  bootout) [ -f "$FAKE_STATE" ] || { echo "Boot-out failed: 3: No such process" >&2; exit 3; }
           rm -f "$FAKE_STATE"; exit 0 ;;
  print) case "$2" in */com.grite.daemon) [ -f "$FAKE_STATE" ] && exit 0; exit 113 ;; esac
         exit 0 ;;
  *) exit 0 ;;
esac
"""


class Fake:
    """The tmp world: config home, fake manager on PATH, and its argv log."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp = tmp_path
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.log = tmp_path / "manager.log"
        self.config = tmp_path / "config"
        self.runtime = tmp_path / "run"
        self.runtime.mkdir(mode=0o700)
        self.units = self.config / "systemd" / "user"
        for name, text in (("systemctl", FAKE_SYSTEMCTL), ("launchctl", FAKE_LAUNCHCTL)):
            script = self.bin / name
            script.write_text(text)
            script.chmod(0o755)
        self.monkeypatch = monkeypatch
        monkeypatch.setenv("PATH", f"{self.bin}:/usr/bin:/bin")
        monkeypatch.setenv("XDG_CONFIG_HOME", str(self.config))
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(self.runtime))
        monkeypatch.delenv("GRITE_DAEMON_SOCKET", raising=False)
        monkeypatch.setenv("FAKE_LOG", str(self.log))
        monkeypatch.setenv("FAKE_STATE", str(tmp_path / "enabled"))
        monkeypatch.setenv("FAKE_RUNTIME", str(self.runtime))

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    return Fake(tmp_path, monkeypatch)


def test_dry_run_prints_plan_and_changes_nothing(fake: Fake) -> None:
    code, out, err = daemon_install(dry_run=True, json=False, quiet=False)
    assert (code, err) == (0, "")
    assert f"would write {fake.units / 'grite.socket'}" in out
    assert f"ExecStart={find_daemon()}\n" in out
    assert "would run: systemctl --user enable --now grite.socket" in out
    assert not fake.config.exists()
    assert fake.calls() == []


def test_install_writes_units_and_enables_socket(fake: Fake) -> None:
    code, out, err = daemon_install(dry_run=False, json=False, quiet=False)
    assert (code, err) == (0, "")
    assert "installed: systemd now starts grite-daemon" in out
    service = (fake.units / "grite.service").read_text()
    assert f"ExecStart={find_daemon()}\n" in service
    assert stat.S_IMODE((fake.units / "grite.socket").stat().st_mode) == 0o644
    assert fake.calls() == [
        "--user show-environment",
        "--user daemon-reload",
        "--user enable --now grite.socket",
    ]


def test_install_twice_says_already_installed(fake: Fake) -> None:
    daemon_install(dry_run=False, json=False, quiet=False)
    code, out, _ = daemon_install(dry_run=False, json=False, quiet=False)
    assert code == 0
    assert "already installed" in out
    assert fake.calls()[3:] == [
        "--user show-environment",
        "--user is-enabled grite.socket",
        "--user is-active grite.socket",
    ]


def test_uninstall_reverses_install_then_reports_not_installed(fake: Fake) -> None:
    daemon_install(dry_run=False, json=False, quiet=False)
    dry = daemon_uninstall(dry_run=True, json=False, quiet=False)
    assert "would run: systemctl --user disable --now grite.socket" in dry[1]
    assert (fake.units / "grite.socket").exists()
    code, out, err = daemon_uninstall(dry_run=False, json=False, quiet=False)
    assert (code, err) == (0, "")
    assert "uninstalled" in out
    assert not (fake.units / "grite.socket").exists()
    assert not (fake.units / "grite.service").exists()
    assert fake.calls()[3:] == [
        "--user show-environment",
        "--user disable --now grite.socket",
        "--user stop grite.service",
        "--user daemon-reload",
    ]
    code, out, _ = daemon_uninstall(dry_run=False, json=False, quiet=False)
    assert code == 0
    assert "not installed" in out
    assert len(fake.calls()) == 7


def test_no_user_manager_writes_files_and_keeps_spawner(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NO_MANAGER", "1")
    code, out, err = daemon_install(dry_run=False, json=False, quiet=False)
    assert (code, err) == (0, "")
    assert "no systemd user manager is reachable" in out
    assert "Failed to connect to bus" in out
    assert "built-in spawner keeps serving" in out
    assert (fake.units / "grite.service").exists()
    assert fake.calls() == ["--user show-environment"]


def test_absent_systemctl_is_explained(fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    (fake.bin / "systemctl").unlink()
    monkeypatch.setenv("PATH", str(fake.bin))  # no /usr/bin: no real systemctl either
    code, out, err = daemon_install(dry_run=False, json=False, quiet=False)
    assert (code, err) == (0, "")
    assert "systemctl not found" in out
    assert (fake.units / "grite.socket").exists()
    code, out, _ = daemon_uninstall(dry_run=False, json=False, quiet=False)
    assert code == 0
    assert not (fake.units / "grite.socket").exists()


def test_unwritable_unit_dir_fails_cleanly(fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    # A file where a directory must go fails even for root, unlike chmod.
    blocker = fake.tmp / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(blocker))
    code, out, err = daemon_install(dry_run=False, json=False, quiet=False)
    assert code == 5
    assert out == ""
    assert "error: cannot write" in err
    assert "Traceback" not in err
    assert fake.calls() == []
    code, out, _ = daemon_install(dry_run=False, json=True, quiet=False)
    envelope = json.loads(out)
    assert code == 5
    assert envelope["ok"] is False
    assert envelope["error"]["code"] == "environment"
    assert "cannot write" in envelope["error"]["message"]


def test_manager_refusing_enable_is_an_error_with_next_step(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_ENABLE_FAILS", "1")
    code, _, err = daemon_install(dry_run=False, json=False, quiet=False)
    assert code == 5
    assert "`systemctl --user enable --now grite.socket` failed" in err
    assert "does not exist" in err
    assert "systemctl --user daemon-reload && systemctl --user enable --now grite.socket" in err
    assert (fake.units / "grite.socket").exists()


def test_json_envelope_and_quiet(fake: Fake) -> None:
    code, out, _ = daemon_install(dry_run=False, json=True, quiet=False)
    envelope = json.loads(out)
    assert code == 0
    assert envelope["schema_version"] == 1 and envelope["ok"] is True
    assert envelope["data"]["outcome"] == "installed"
    assert [c["argv"][-1] for c in envelope["data"]["commands"]] == [
        "show-environment",
        "daemon-reload",
        "grite.socket",
    ]
    assert daemon_uninstall(dry_run=False, json=False, quiet=True) == (0, "", "")


def test_socket_path_disagreement_is_noted(fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_RUNTIME", "/run/user/4242")
    code, out, _ = daemon_install(dry_run=False, json=False, quiet=False)
    assert code == 0
    assert "note: grite.socket listens on /run/user/4242/grite/daemon.sock" in out


def test_launchd_install_and_uninstall(fake: Fake) -> None:
    home = fake.tmp / "home"
    sock = str(fake.runtime / "grite" / "daemon.sock")
    kwargs = {"platform": "darwin", "home": home, "uid": 501}
    report = install(
        dry_run=False, daemon_path="/opt/g/bin/grite-daemon", socket_path=sock, **kwargs
    )
    plist = home / "Library" / "LaunchAgents" / "com.grite.daemon.plist"
    assert report.exit_code == 0, report.summary
    assert report.outcome == "installed"
    assert sock in plist.read_text()
    assert stat.S_IMODE((fake.runtime / "grite").stat().st_mode) == 0o700
    assert fake.calls() == [
        "print gui/501",
        "bootout gui/501/com.grite.daemon",
        "enable gui/501/com.grite.daemon",
        f"bootstrap gui/501 {plist}",
    ]
    again = install(
        dry_run=False, daemon_path="/opt/g/bin/grite-daemon", socket_path=sock, **kwargs
    )
    assert again.outcome == "already_installed"
    gone = uninstall(dry_run=False, **kwargs)
    assert gone.outcome == "uninstalled" and gone.exit_code == 0
    assert not plist.exists()
    assert fake.calls()[-2:] == ["print gui/501", "bootout gui/501/com.grite.daemon"]
    assert uninstall(dry_run=False, **kwargs).outcome == "not_installed"


def test_unsupported_platform_needs_nothing() -> None:
    report = install(dry_run=False, platform="freebsd14")
    assert report.exit_code == 5
    assert "starts its daemon itself" in report.summary


def test_commands_never_hang(tmp_path: Path) -> None:
    record = run_command(["sleep", "30"], 0.2)
    assert record.returncode is None
    assert record.error == "timed out after 0.2 s"
    assert run_command([str(tmp_path / "missing")], 1).error.endswith("not found")
    assert os.path.isabs(find_daemon() or "")
