"""Shipped packaging checked with the real tools: `systemd-analyze verify --user` on the units,
plistlib (launchd_lint: plutil -lint's parse plus launchd.plist(5)'s keys and types; plutil
itself on macOS) on the LaunchAgent, `mandoc -Tlint` on the man pages.

A missing systemd-analyze or mandoc is a failure (CI installs the `systemd` and `mandoc` apt
packages). The shipped grite.service names /usr/bin/grite-daemon, which does not exist on a
development machine and verify checks ExecStart; `--root` does not combine with `--user`. So
verify runs on the copy the installer renders (the real installed grite-daemon in ExecStart),
and a separate test proves the shipped file differs from that copy in the ExecStart path only.
"""

from __future__ import annotations

import plistlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grite.cli import service_install
from grite.cli.service_install import find_daemon, render_plist, render_service

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD_DIR = ROOT / "packaging" / "systemd"
PLIST_TEMPLATE = ROOT / "packaging" / "launchd" / "com.grite.daemon.plist.in"
MAN_PAGES = [ROOT / "man" / "grite.1", ROOT / "man" / "grite-daemon.8"]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; CI installs it (see .ci/run)")
    return path


def verify(tmp_path: Path, *units: Path) -> str:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    proc = subprocess.run(
        [tool("systemd-analyze"), "verify", "--user", "--man=no", *map(str, units)],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(runtime)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    # Unknown keys may leave the exit status at 0: any output is a finding.
    return f"{proc.returncode}\n{proc.stdout}{proc.stderr}".strip()


def render_units(tmp_path: Path) -> tuple[Path, Path]:
    daemon = find_daemon()
    assert daemon is not None, "grite-daemon is not installed (pip install -e .)"
    out = tmp_path / "units"
    out.mkdir()
    (out / "grite.socket").write_text(service_install.SYSTEMD_SOCKET)
    (out / "grite.service").write_text(render_service(daemon))
    return out / "grite.socket", out / "grite.service"


def test_shipped_files_are_what_the_installer_writes() -> None:
    assert (SYSTEMD_DIR / "grite.socket").read_text() == service_install.SYSTEMD_SOCKET
    assert (SYSTEMD_DIR / "grite.service").read_text() == service_install.SYSTEMD_SERVICE
    assert PLIST_TEMPLATE.read_text() == service_install.LAUNCHD_PLIST_TEMPLATE


def test_rendered_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    socket_unit, service_unit = render_units(tmp_path)
    assert verify(tmp_path, socket_unit, service_unit) == "0"


def test_shipped_service_differs_from_verified_copy_only_in_exec_start(tmp_path: Path) -> None:
    shipped = (SYSTEMD_DIR / "grite.service").read_text().splitlines()
    rendered = render_service("/opt/grite/bin/grite-daemon").splitlines()
    changed = [(a, b) for a, b in zip(shipped, rendered, strict=True) if a != b]
    assert changed == [
        (
            "ExecStart=/usr/bin/grite-daemon",
            "ExecStart=/opt/grite/bin/grite-daemon",
        )
    ]


def test_verify_reports_a_broken_unit(tmp_path: Path) -> None:
    # Guards the check above: a typo in a directive must produce a finding.
    socket_unit, service_unit = render_units(tmp_path)
    socket_unit.write_text(socket_unit.read_text().replace("Accept=no", "Acept=no"))
    assert "Unknown key 'Acept'" in verify(tmp_path, socket_unit, service_unit)


def test_units_say_what_the_design_requires() -> None:
    sock = service_install.SYSTEMD_SOCKET
    service = service_install.SYSTEMD_SERVICE
    for line in (
        "ListenStream=%t/grite/daemon.sock",
        "SocketMode=0600",
        "DirectoryMode=0700",
        "Accept=no",
        "FileDescriptorName=grite",
        "WantedBy=sockets.target",
    ):
        assert line in sock.splitlines()
    for line in ("Type=notify", "NotifyAccess=main", "Restart=on-failure"):
        assert line in service.splitlines()


def test_exec_start_quotes_awkward_paths() -> None:
    rendered = render_service("/home/a b/100%/$x/grite-daemon")
    assert 'ExecStart="/home/a b/100%%/$$x/grite-daemon"\n' in rendered


def test_rendered_plist_is_valid_and_on_demand() -> None:
    text = render_plist("/Users/a&b/bin/grite-daemon", "/tmp/grite-501/daemon.sock", "/l/d.log")
    plist = plistlib.loads(text.encode())
    assert plist["Label"] == "com.grite.daemon"
    assert plist["ProgramArguments"] == ["/Users/a&b/bin/grite-daemon"]
    listener = plist["Sockets"]["Listeners"]
    assert listener == {
        "SockPathName": "/tmp/grite-501/daemon.sock",
        "SockPathMode": 384,
        "SockType": "stream",
    }
    assert "RunAtLoad" not in plist and "KeepAlive" not in plist
    assert plist["StandardErrorPath"] == "/l/d.log"
    assert "@" not in text


# launchd.plist(5): the keys launchd knows, and the type each one we use must have. plutil -lint
# (macOS only) checks that the file parses; launchd also needs the right types, which no tool
# off macOS checks, so this does.
_LAUNCHD_KEYS = frozenset(
    """Label Disabled UserName GroupName inetdCompatibility LimitLoadToHosts LimitLoadFromHosts
    LimitLoadToSessionType Program ProgramArguments EnableGlobbing EnableTransactions
    EnablePressuredExit OnDemand KeepAlive RunAtLoad RootDirectory WorkingDirectory
    EnvironmentVariables Umask TimeOut ExitTimeOut ThrottleInterval InitGroups WatchPaths
    QueueDirectories StartOnMount StartInterval StartCalendarInterval StandardInPath
    StandardOutPath StandardErrorPath Debug WaitForDebugger SoftResourceLimits
    HardResourceLimits Nice ProcessType AbandonProcessGroup LowPriorityIO
    LowPriorityBackgroundIO MaterializeDatalessFiles LaunchOnlyOnce MachServices Sockets
    AssociatedBundleIdentifiers SessionCreate LegacyTimers""".split()
)
_SOCKET_KEYS = frozenset(
    """SockType SockPassive SockNodeName SockServiceName SockFamily SockProtocol SockPathName
    SecureSocketWithKey SockPathOwner SockPathGroup SockPathMode Bonjour MulticastGroup""".split()
)


def launchd_lint(text: str) -> list[str]:
    """What plutil -lint and launchd would refuse in a LaunchAgent plist; [] when none."""
    try:
        plist = plistlib.loads(text.encode())
    except Exception as exc:  # plistlib raises ExpatError, ValueError, ...: all are findings
        return [f"does not parse: {exc}"]
    findings = [f"unknown key {key}" for key in plist if key not in _LAUNCHD_KEYS]
    if not isinstance(plist.get("Label"), str) or not plist["Label"]:
        findings.append("Label must be a non-empty string")
    args = plist.get("ProgramArguments")
    if not (isinstance(args, list) and args and all(isinstance(a, str) for a in args)):
        findings.append("ProgramArguments must be a non-empty array of strings")
    elif not args[0].startswith("/"):
        findings.append("ProgramArguments[0] must be an absolute path")
    if plist.get("ProcessType") not in (None, "Background", "Standard", "Adaptive", "Interactive"):
        findings.append("ProcessType is not one launchd knows")
    for key in ("StandardErrorPath", "StandardOutPath"):
        if key in plist and not (isinstance(plist[key], str) and plist[key].startswith("/")):
            findings.append(f"{key} must be an absolute path")
    for name, sock in (plist.get("Sockets") or {}).items():
        if not isinstance(sock, dict):
            findings.append(f"Sockets/{name} must be a dictionary")
            continue
        findings += [f"unknown key Sockets/{name}/{key}" for key in sock if key not in _SOCKET_KEYS]
        if sock.get("SockType", "stream") not in ("stream", "dgram", "seqpacket"):
            findings.append(f"Sockets/{name}/SockType is not stream, dgram or seqpacket")
        mode = sock.get("SockPathMode")
        if mode is not None and (type(mode) is not int or not 0 <= mode <= 0o777):
            findings.append(f"Sockets/{name}/SockPathMode must be an integer mode")
        if not str(sock.get("SockPathName", "")).startswith("/"):
            findings.append(f"Sockets/{name}/SockPathName must be an absolute path")
    # plutil -convert binary1 and back: every value must survive the binary format too.
    if plistlib.loads(plistlib.dumps(plist, fmt=plistlib.FMT_BINARY)) != plist:
        findings.append("does not round-trip through the binary format")
    return findings


def test_rendered_plist_passes_launchd_lint() -> None:
    text = render_plist(
        "/Users/a&b <c>/bin/grite-daemon", "/var/folders/x/T/grite-501/daemon.sock", "/tmp/l"
    )
    assert launchd_lint(text) == []
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC')
    assert plistlib.loads(text.encode())["ProgramArguments"] == ["/Users/a&b <c>/bin/grite-daemon"]


def test_launchd_lint_reports_what_launchd_refuses() -> None:
    good = render_plist("/usr/local/bin/grite-daemon", "/tmp/g/daemon.sock", "/tmp/l")
    broken = {
        "does not parse": good.replace("</dict>\n</plist>", "</plist>"),
        "unknown key RunAtLoadd": good.replace("<key>ProcessType</key>", "<key>RunAtLoadd</key>"
                                               "<true/><key>ProcessType</key>"),
        "SockPathMode must be an integer": good.replace("<integer>384</integer>",
                                                        "<string>0600</string>"),
        "must be an absolute path": good.replace("/usr/local/bin/grite-daemon", "grite-daemon"),
        "SockType is not": good.replace("<string>stream</string>", "<string>tcp</string>"),
    }  # fmt: skip
    for finding, text in broken.items():
        assert any(finding in f for f in launchd_lint(text)), (finding, launchd_lint(text))


@pytest.mark.skipif(sys.platform != "darwin", reason="plutil exists only on macOS")
def test_rendered_plist_passes_plutil(tmp_path: Path) -> None:
    path = tmp_path / "com.grite.daemon.plist"
    path.write_text(render_plist("/usr/local/bin/grite-daemon", "/tmp/g/daemon.sock", "/tmp/l"))
    proc = subprocess.run(["plutil", "-lint", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# Findings that depend on the machine, not on the page: manuals not installed here.
_ENVIRONMENTAL = re.compile(r"referenced manual not found|mandoc\.db")


@pytest.mark.parametrize("page", MAN_PAGES, ids=lambda p: p.name)
def test_man_page_is_lint_clean(page: Path) -> None:
    proc = subprocess.run(
        [tool("mandoc"), "-Tlint", str(page)], capture_output=True, text=True, timeout=30
    )
    findings = [
        line for line in (proc.stdout + proc.stderr).splitlines() if not _ENVIRONMENTAL.search(line)
    ]
    assert findings == []


def rendered_text(page: Path) -> str:
    proc = subprocess.run(
        [tool("mandoc"), "-Tascii", "-Owidth=200", str(page)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return re.sub(r".\x08", "", proc.stdout)


def test_grite_1_documents_the_cli_surface() -> None:
    text = rendered_text(ROOT / "man" / "grite.1")
    words = [
        *("--json", "--quiet", "--actor", "--data-dir", "--no-daemon", "--version", "--help"),
        *("GRITE_HOME", "GRITE_NO_DAEMON", "GRITE_DAEMON_SOCKET", "GRITE_DAEMON_IDLE_TIMEOUT"),
        *("init [--no-agents-md]", "actor init", "actor list", "actor show", "actor current"),
        *("actor use", "issue create", "issue update", "issue list", "issue show"),
        *("issue comment", "issue close", "issue reopen", "issue label add", "issue assignee"),
        *("issue link add", "issue attachment add", "issue dep add", "issue dep list"),
        *("issue dep topo", "daemon start", "daemon status", "daemon stop", "daemon restart"),
        *("daemon install [--dry-run]", "daemon uninstall [--dry-run]", "--reverse", "--limit"),
        *(".git/grite/config.toml", ".git/grite/pydaemon.json", "refs/grite/wal", "spawn.lock"),
        *("daemon.log", "EXIT STATUS", "depends_on", "related_to", "--sha256", "--target"),
    ]
    missing = [word for word in words if word not in text]
    assert missing == []


def test_grite_daemon_8_documents_options_modes_and_signals() -> None:
    text = rendered_text(ROOT / "man" / "grite-daemon.8")
    words = [
        *("--socket-path", "--idle-timeout", "--log-level", "--log-file", "--foreground"),
        *("systemd", "launchd", "self-bind", "SIGINT", "SIGTERM", "IDLE EXIT", "grite.socket"),
        *("grite.service", "com.grite.daemon.plist", "LISTEN_FDS", "NOTIFY_SOCKET"),
    ]
    missing = [word for word in words if word not in text]
    assert missing == []
