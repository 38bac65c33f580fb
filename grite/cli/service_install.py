"""Install and uninstall the per-user service that socket-activates `grite-daemon`.

Owns `grite daemon install|uninstall`: on Linux the systemd user units grite.socket and
grite.service in `$XDG_CONFIG_HOME/systemd/user/`, enabled with `systemctl --user`; on macOS the
LaunchAgent `com.grite.daemon` in `~/Library/LaunchAgents/`, loaded with `launchctl bootstrap`.
The unit and plist texts are the ones shipped in packaging/ (a test keeps them identical); only
the daemon's absolute path (and, for launchd, the socket and log paths) are filled in.

Every external command runs with a timeout and stdin closed, so nothing here can hang. Where no
service manager is reachable (containers, SSH sessions, CI) the files are still written and the
report says so plainly: the built-in spawner keeps serving. Exit statuses: 0 when the requested
state is reached, already present, or the files are in place but no manager is reachable (or for
a dry run); 5 (environment) when the files cannot be written or removed, `grite-daemon` cannot
be found, the platform has no supported manager, or a reachable manager refused or timed out
(the user asked for activation and must act). Nothing is printed here: the CLI renders reports.

Must not read os.environ itself: paths come from grite.ipc.paths (the client's own resolution,
so the LaunchAgent's socket is where clients connect) or from the caller.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple
from xml.sax.saxutils import escape

import msgspec

from grite.ipc import paths as ipc_paths
from grite.model.errors import Environment

__all__ = [
    "DISTRIBUTION_DAEMON",
    "LAUNCHD_LABEL",
    "LAUNCHD_PLIST_TEMPLATE",
    "SYSTEMD_SERVICE",
    "SYSTEMD_SOCKET",
    "CommandRecord",
    "FileChange",
    "InstallReport",
    "Runner",
    "find_daemon",
    "install",
    "render_plist",
    "render_service",
    "run_command",
    "uninstall",
]

# ExecStart path in the shipped grite.service (what a distribution installs).
DISTRIBUTION_DAEMON = "/usr/bin/grite-daemon"
LAUNCHD_LABEL = "com.grite.daemon"
_SOCKET_UNIT = "grite.socket"
_SERVICE_UNIT = "grite.service"
_PROBE_TIMEOUT = 5.0
_COMMAND_TIMEOUT = 20.0

# The texts of packaging/systemd/grite.socket, packaging/systemd/grite.service and
# packaging/launchd/com.grite.daemon.plist.in; tests/integration/test_packaging.py fails when
# they drift apart. They live here too because a pip install does not ship packaging/.
SYSTEMD_SOCKET = """\
# Per-user socket for the grite daemon (systemd user unit).
# A distribution installs this file into /usr/lib/systemd/user/; `grite daemon install`
# writes a copy into $XDG_CONFIG_HOME/systemd/user/. systemd owns the socket: it creates
# the path, hands the listening socket to grite.service on the first connection and keeps
# queued connections for the next instance after the daemon exits when idle.

[Unit]
Description=grite issue tracker daemon socket
Documentation=man:grite-daemon(8)

[Socket]
# %t is $XDG_RUNTIME_DIR for a user manager; the grite client computes the same path.
ListenStream=%t/grite/daemon.sock
# The defaults are 0666 and 0755: only the user may connect or list the directory.
SocketMode=0600
DirectoryMode=0700
# One long-lived daemon receives the listening socket (not one process per connection).
Accept=no
# Exported in LISTEN_FDNAMES so the daemon picks this fd by name.
FileDescriptorName=grite
# Stopping the socket (`grite daemon uninstall`, package removal) also removes the path, so
# no dead socket is left behind for clients to find.
RemoveOnStop=yes

[Install]
WantedBy=sockets.target
"""

SYSTEMD_SERVICE = """\
# Per-user grite daemon, started by grite.socket on the first connection (systemd user unit).
# ExecStart names the distribution path; `grite daemon install` rewrites it with the absolute
# path of the installed grite-daemon. The daemon exits when idle for `[daemon]
# idle_timeout_seconds` (the user's or /etc/xdg/grite/config.toml, default 300); systemd starts
# it again on the next connection. A drop-in may add --idle-timeout, which wins.

[Unit]
Description=grite issue tracker daemon
Documentation=man:grite-daemon(8) man:grite(1)
# Never run without the socket: a daemon started alone would bind the path itself.
Requires=grite.socket
After=grite.socket
# Every activation after an idle exit counts as a start, and systemd's default limit (5 starts
# in 10 s) then fails grite.socket for good: a few restarts, an upgrade and a short idle
# timeout trip it. 30 in 30 s still stops a crash loop (a failed start takes under a second).
StartLimitIntervalSec=30
StartLimitBurst=30

[Service]
Type=notify
NotifyAccess=main
ExecStart=/usr/bin/grite-daemon
# An idle exit is a clean exit (status 0) and must not restart the daemon.
Restart=on-failure
TimeoutStopSec=30
"""

LAUNCHD_PLIST_TEMPLATE = """\
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" \
"http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!--
  Per-user LaunchAgent for the grite daemon. `grite daemon install` fills in the placeholders
  (the absolute path of grite-daemon, the socket path the grite client computes, the daemon's
  stderr log) and writes the result to
  ~/Library/LaunchAgents/com.grite.daemon.plist. launchd owns the socket and starts the
  daemon on the first connection; the daemon exits when idle and launchd starts it again.
  No RunAtLoad and no KeepAlive: the daemon runs on demand only.
-->
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>com.grite.daemon</string>
  <key>ProgramArguments</key>
  <array>
    <string>@GRITE_DAEMON@</string>
  </array>
  <key>Sockets</key>
  <dict>
    <key>Listeners</key>
    <dict>
      <key>SockPathName</key>
      <string>@SOCKET_PATH@</string>
      <!-- 0600: plists have no octal numbers -->
      <key>SockPathMode</key>
      <integer>384</integer>
      <key>SockType</key>
      <string>stream</string>
    </dict>
  </dict>
  <key>ProcessType</key>
  <string>Interactive</string>
  <key>StandardErrorPath</key>
  <string>@LOG_PATH@</string>
</dict>
</plist>
"""


class CommandRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One external command: run (returncode set or error set) or only planned (dry run)."""

    argv: list[str]
    ran: bool = True
    returncode: int | None = None
    output: str = ""
    error: str = ""  # "not found", "timed out after 5 s", ...

    @property
    def ok(self) -> bool:
        return self.ran and self.returncode == 0


class FileChange(msgspec.Struct, frozen=True, kw_only=True):
    """A file the installer writes or removes."""

    path: str
    # "write" (new or different), "unchanged", "remove", "absent"
    action: Literal["write", "unchanged", "remove", "absent"]
    content: str | None = None  # the text to write, in dry runs


class InstallReport(msgspec.Struct, frozen=True, kw_only=True):
    """What install or uninstall did (or would do, in a dry run), for the CLI to render."""

    action: Literal["install", "uninstall"]
    manager: Literal["systemd", "launchd", "none"]
    dry_run: bool
    # installed | already_installed | files_only | uninstalled | not_installed | would_change
    # | failed
    outcome: str
    summary: str  # one sentence: the state reached and what to do next, if anything
    exit_code: int = 0
    manager_reachable: bool | None = None
    files: list[FileChange] = msgspec.field(default_factory=list)
    commands: list[CommandRecord] = msgspec.field(default_factory=list)
    notes: list[str] = msgspec.field(default_factory=list)


Runner = Callable[[Sequence[str], float], CommandRecord]


def run_command(argv: Sequence[str], timeout: float) -> CommandRecord:
    """Run `argv` with stdin closed and a timeout; never raises for a missing or hung tool."""
    try:
        proc = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        return CommandRecord(argv=list(argv), error=f"{argv[0]} not found")
    except subprocess.TimeoutExpired:
        return CommandRecord(argv=list(argv), error=f"timed out after {timeout:g} s")
    except OSError as exc:
        return CommandRecord(argv=list(argv), error=exc.strerror or str(exc))
    output = (proc.stdout + proc.stderr).strip()
    return CommandRecord(argv=list(argv), returncode=proc.returncode, output=output)


def find_daemon() -> str | None:
    """Absolute path of the `grite-daemon` belonging to this Python, or None.

    The scripts directory of this interpreter comes first (a venv's or a --user install's
    bin/), then the interpreter's own directory, then PATH: a shim found on PATH first (pyenv,
    asdf) may resolve to another Python under the service manager's environment.
    """
    candidates = [
        Path(sysconfig.get_path("scripts")) / "grite-daemon",
        Path(sys.executable).parent / "grite-daemon",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate.absolute())
    found = shutil.which("grite-daemon")
    return str(Path(found).absolute()) if found else None


def render_service(daemon_path: str) -> str:
    """grite.service with ExecStart naming `daemon_path` (absolute) instead of /usr/bin."""
    old = f"ExecStart={DISTRIBUTION_DAEMON}\n"
    assert SYSTEMD_SERVICE.count(old) == 1
    return SYSTEMD_SERVICE.replace(old, f"ExecStart={_systemd_word(daemon_path)}\n")


def render_plist(daemon_path: str, socket_path: str, log_path: str) -> str:
    """The LaunchAgent plist with its three placeholders filled in (XML-escaped)."""
    return (
        LAUNCHD_PLIST_TEMPLATE.replace("@GRITE_DAEMON@", escape(daemon_path))
        .replace("@SOCKET_PATH@", escape(socket_path))
        .replace("@LOG_PATH@", escape(log_path))
    )


def _systemd_word(path: str) -> str:
    """Quote one ExecStart word: systemd expands %specifiers, $VARS and C escapes."""
    text = path.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    if any(ch.isspace() for ch in text) or "'" in path or '"' in path:
        return f'"{text}"'
    return text


# --- public entry points -------------------------------------------------------------------


def install(
    *,
    dry_run: bool,
    platform: str = sys.platform,
    config_home: Path | None = None,
    home: Path | None = None,
    daemon_path: str | None = None,
    socket_path: str | None = None,
    runner: Runner = run_command,
    uid: int | None = None,
) -> InstallReport:
    """Install the per-user service for `grite-daemon` and enable its socket.

    Args:
        dry_run: report what would be written and run; change nothing, run nothing.
        platform: `sys.platform`; "linux" uses systemd, "darwin" launchd.
        config_home: XDG config dir (default: the one grite's user config lives in).
        home: home directory for ~/Library on macOS (default Path.home()).
        daemon_path: absolute path of grite-daemon (default find_daemon()).
        socket_path: launchd socket path (default: the client's, grite.ipc.paths).
        runner: runs one external command with a timeout.
        uid: user id for launchctl domains (default os.getuid()).

    Returns:
        The report; `exit_code` is 0 or 5 as described in the module docstring.
    """
    plan = _plan(platform, config_home, home, daemon_path, socket_path, uid)
    if isinstance(plan, InstallReport):
        return msgspec.structs.replace(plan, action="install", dry_run=dry_run)
    return plan.install(dry_run=dry_run, runner=runner)


def uninstall(
    *,
    dry_run: bool,
    platform: str = sys.platform,
    config_home: Path | None = None,
    home: Path | None = None,
    runner: Runner = run_command,
    uid: int | None = None,
) -> InstallReport:
    """Stop and remove what `install` set up, in reverse order. Arguments as for install."""
    plan = _plan(platform, config_home, home, "", "", uid)
    if isinstance(plan, InstallReport):
        return msgspec.structs.replace(plan, action="uninstall", dry_run=dry_run)
    return plan.uninstall(dry_run=dry_run, runner=runner)


def _plan(
    platform: str,
    config_home: Path | None,
    home: Path | None,
    daemon_path: str | None,
    socket_path: str | None,
    uid: int | None,
) -> _Service | InstallReport:
    if not platform.startswith(("linux", "darwin")):
        return _failure(
            "none",
            f"no supported service manager on {platform}: grite starts its daemon itself "
            "when needed, so nothing needs installing",
        )
    if daemon_path is None:
        daemon_path = find_daemon()
        if daemon_path is None:
            return _failure(
                "systemd" if platform.startswith("linux") else "launchd",
                "cannot find the grite-daemon program next to this Python or on PATH; "
                "reinstall grite (`pip install --force-reinstall grite`) and retry",
            )
    if platform.startswith("linux"):
        if config_home is None:
            # user_config_file is $XDG_CONFIG_HOME/grite/config.toml: its grandparent is the
            # config home, resolved by the one module that reads XDG variables for clients.
            config_home = Path(ipc_paths.user_config_file()).parent.parent
        return _Systemd(config_home / "systemd" / "user", daemon_path)
    home = Path.home() if home is None else home
    if socket_path is None:
        socket_path = ipc_paths.runtime_paths().socket
    return _Launchd(
        plist=home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist",
        log_path=str(home / "Library" / "Logs" / "grite-daemon.log"),
        daemon_path=daemon_path,
        socket_path=socket_path,
        uid=os.getuid() if uid is None else uid,
    )


def _failure(manager: Literal["systemd", "launchd", "none"], summary: str) -> InstallReport:
    return InstallReport(
        action="install",
        manager=manager,
        dry_run=False,
        outcome="failed",
        summary=summary,
        exit_code=5,
    )


class _Step(NamedTuple):
    """A command the installer runs; a failing `may_fail` step (e.g. bootout of an agent that
    is not loaded) is recorded but does not stop the sequence."""

    argv: list[str]
    may_fail: bool = False


# --- shared machinery ----------------------------------------------------------------------


class _Service:
    """One manager's files and commands; subclasses fill in the specifics."""

    manager: Literal["systemd", "launchd"]

    def files(self) -> dict[Path, str]:
        raise NotImplementedError

    def probe(self, runner: Runner) -> CommandRecord:
        raise NotImplementedError

    def is_active(self, runner: Runner) -> bool:
        raise NotImplementedError

    def enable_commands(self, files_changed: bool) -> list[_Step]:
        raise NotImplementedError

    def disable_commands(self) -> list[_Step]:
        raise NotImplementedError

    def after_removal_commands(self) -> list[_Step]:
        return []

    def prepare(self) -> str | None:
        """Last step before enabling; returns a note, or None."""
        return None

    def manual_enable_hint(self) -> str:
        raise NotImplementedError

    def unreachable_reason(self, probe: CommandRecord) -> str:
        raise NotImplementedError

    def agreement_note(self, probe: CommandRecord) -> str | None:
        return None

    # -- install --

    def install(self, *, dry_run: bool, runner: Runner) -> InstallReport:
        wanted = self.files()
        changes = [_compare(path, text) for path, text in wanted.items()]
        changed = any(change.action == "write" for change in changes)
        base = InstallReport(
            action="install", manager=self.manager, dry_run=dry_run, outcome="", summary=""
        )
        if dry_run:
            planned = [
                msgspec.structs.replace(c, content=wanted[Path(c.path)])
                if c.action == "write"
                else c
                for c in changes
            ]
            commands = [
                CommandRecord(argv=step.argv, ran=False) for step in self.enable_commands(changed)
            ]
            return msgspec.structs.replace(
                base,
                outcome="would_change" if changed else "already_installed",
                summary="dry run: nothing was written or run; the commands run only when a "
                "user service manager is reachable",
                files=planned,
                commands=commands,
            )
        for change in changes:
            if change.action == "write":
                error = _write(Path(change.path), wanted[Path(change.path)])
                if error is not None:
                    return msgspec.structs.replace(
                        base, outcome="failed", exit_code=5, files=changes, summary=error
                    )
        notes: list[str] = []
        prepared = self.prepare()
        if prepared:
            notes.append(prepared)
        probe = self.probe(runner)
        commands = [probe]
        if not probe.ok:
            state = "written" if changed else "already in place"
            return msgspec.structs.replace(
                base,
                outcome="files_only",
                manager_reachable=False,
                files=changes,
                commands=commands,
                notes=notes,
                summary=f"files {state}, but {self.unreachable_reason(probe)}; the built-in "
                f"spawner keeps serving grite commands. To activate later: "
                f"{self.manual_enable_hint()}",
            )
        agreement = self.agreement_note(probe)
        if agreement:
            notes.append(agreement)
        if not changed and self.is_active(runner):
            return msgspec.structs.replace(
                base,
                outcome="already_installed",
                manager_reachable=True,
                files=changes,
                commands=commands,
                notes=notes,
                summary=f"already installed: the {self.manager} socket is active",
            )
        for step in self.enable_commands(changed):
            record = runner(step.argv, _COMMAND_TIMEOUT)
            commands.append(record)
            if not record.ok and not step.may_fail:
                return msgspec.structs.replace(
                    base,
                    outcome="failed",
                    exit_code=5,
                    manager_reachable=True,
                    files=changes,
                    commands=commands,
                    notes=notes,
                    summary=f"`{' '.join(step.argv)}` failed ({_why(record)}); the files are in "
                    f"place and the built-in spawner keeps serving. Fix the cause, then run: "
                    f"{self.manual_enable_hint()}",
                )
        return msgspec.structs.replace(
            base,
            outcome="installed",
            manager_reachable=True,
            files=changes,
            commands=commands,
            notes=notes,
            summary=f"installed: {self.manager} now starts grite-daemon on the first connection",
        )

    # -- uninstall --

    def uninstall(self, *, dry_run: bool, runner: Runner) -> InstallReport:
        present = [path for path in self.files() if path.exists() or path.is_symlink()]
        changes = [
            FileChange(path=str(p), action="remove" if p in present else "absent")
            for p in self.files()
        ]
        base = InstallReport(
            action="uninstall",
            manager=self.manager,
            dry_run=dry_run,
            outcome="",
            summary="",
            files=changes,
        )
        if not present:
            return msgspec.structs.replace(
                base, outcome="not_installed", summary="not installed: nothing to remove"
            )
        if dry_run:
            steps = self.disable_commands() + self.after_removal_commands()
            return msgspec.structs.replace(
                base,
                outcome="would_change",
                commands=[CommandRecord(argv=step.argv, ran=False) for step in steps],
                summary="dry run: nothing was removed or run; the commands run only when a "
                "user service manager is reachable",
            )
        probe = self.probe(runner)
        commands = [probe]
        failed: CommandRecord | None = None
        if probe.ok:
            for step in self.disable_commands():
                record = runner(step.argv, _COMMAND_TIMEOUT)
                commands.append(record)
                if not record.ok and not step.may_fail:
                    failed = failed or record
        for path in present:
            error = _remove(path)
            if error is not None:
                return msgspec.structs.replace(
                    base, outcome="failed", exit_code=5, commands=commands, summary=error
                )
        if probe.ok:
            for step in self.after_removal_commands():
                record = runner(step.argv, _COMMAND_TIMEOUT)
                commands.append(record)
                if not record.ok and not step.may_fail:
                    failed = failed or record
        if failed is not None:
            return msgspec.structs.replace(
                base,
                outcome="failed",
                exit_code=5,
                manager_reachable=True,
                commands=commands,
                summary=f"files removed, but `{' '.join(failed.argv)}` failed ({_why(failed)}); "
                "run it again by hand",
            )
        if not probe.ok:
            summary = (
                f"uninstalled: files removed; {self.unreachable_reason(probe)}, so nothing "
                "needed stopping"
            )
        else:
            summary = f"uninstalled: {self.manager} no longer starts grite-daemon"
        return msgspec.structs.replace(
            base,
            outcome="uninstalled",
            manager_reachable=probe.ok,
            commands=commands,
            summary=summary,
        )


class _Systemd(_Service):
    manager: Literal["systemd", "launchd"] = "systemd"

    def __init__(self, unit_dir: Path, daemon_path: str) -> None:
        self.unit_dir = unit_dir
        self.daemon_path = daemon_path

    def files(self) -> dict[Path, str]:
        return {
            self.unit_dir / _SOCKET_UNIT: SYSTEMD_SOCKET,
            self.unit_dir / _SERVICE_UNIT: render_service(self.daemon_path),
        }

    def probe(self, runner: Runner) -> CommandRecord:
        return runner(["systemctl", "--user", "show-environment"], _PROBE_TIMEOUT)

    def is_active(self, runner: Runner) -> bool:
        enabled = runner(["systemctl", "--user", "is-enabled", _SOCKET_UNIT], _PROBE_TIMEOUT)
        active = runner(["systemctl", "--user", "is-active", _SOCKET_UNIT], _PROBE_TIMEOUT)
        return enabled.ok and active.ok

    def enable_commands(self, files_changed: bool) -> list[_Step]:
        reload = [_Step(["systemctl", "--user", "daemon-reload"])] if files_changed else []
        return reload + [_Step(["systemctl", "--user", "enable", "--now", _SOCKET_UNIT])]

    def disable_commands(self) -> list[_Step]:
        # Requires=grite.socket stops the service with its socket; the explicit stop also
        # covers a service started by hand.
        return [
            _Step(["systemctl", "--user", "disable", "--now", _SOCKET_UNIT]),
            _Step(["systemctl", "--user", "stop", _SERVICE_UNIT]),
        ]

    def after_removal_commands(self) -> list[_Step]:
        return [_Step(["systemctl", "--user", "daemon-reload"])]

    def manual_enable_hint(self) -> str:
        return "systemctl --user daemon-reload && systemctl --user enable --now grite.socket"

    def unreachable_reason(self, probe: CommandRecord) -> str:
        return f"no systemd user manager is reachable ({_why(probe)})"

    def agreement_note(self, probe: CommandRecord) -> str | None:
        # %t in grite.socket is the manager's XDG_RUNTIME_DIR; the client must resolve the
        # same path or it will never reach the activated socket.
        runtime = next(
            (
                line.partition("=")[2]
                for line in probe.output.splitlines()
                if line.startswith("XDG_RUNTIME_DIR=")
            ),
            None,
        )
        if not runtime:
            return None
        unit_socket = os.path.join(runtime, "grite", "daemon.sock")
        client_socket = ipc_paths.runtime_paths().socket
        if client_socket == unit_socket:
            return None
        return (
            f"grite.socket listens on {unit_socket}, but grite clients in this shell connect to "
            f"{client_socket}; set XDG_RUNTIME_DIR={runtime} (and unset GRITE_DAEMON_SOCKET) "
            "so that commands reach the activated daemon"
        )


class _Launchd(_Service):
    manager: Literal["systemd", "launchd"] = "launchd"

    def __init__(
        self, *, plist: Path, log_path: str, daemon_path: str, socket_path: str, uid: int
    ) -> None:
        self.plist = plist
        self.log_path = log_path
        self.daemon_path = daemon_path
        self.socket_path = socket_path
        self.domain = f"gui/{uid}"

    def files(self) -> dict[Path, str]:
        return {self.plist: render_plist(self.daemon_path, self.socket_path, self.log_path)}

    def prepare(self) -> str | None:
        # launchd binds SockPathName but does not create its directory.
        if not self.socket_path:
            return None
        try:
            ipc_paths.ensure_runtime_dir(ipc_paths.paths_for_socket(self.socket_path))
        except Environment as exc:
            return f"socket directory problem: {exc.message}"
        return None

    def probe(self, runner: Runner) -> CommandRecord:
        return runner(["launchctl", "print", self.domain], _PROBE_TIMEOUT)

    def is_active(self, runner: Runner) -> bool:
        target = f"{self.domain}/{LAUNCHD_LABEL}"
        return runner(["launchctl", "print", target], _PROBE_TIMEOUT).ok

    def enable_commands(self, files_changed: bool) -> list[_Step]:
        target = f"{self.domain}/{LAUNCHD_LABEL}"
        # A changed plist takes effect only after bootout, which fails when nothing is
        # loaded: expected, so it may fail.
        return [
            _Step(["launchctl", "bootout", target], may_fail=True),
            _Step(["launchctl", "enable", target]),
            _Step(["launchctl", "bootstrap", self.domain, str(self.plist)]),
        ]

    def disable_commands(self) -> list[_Step]:
        # Fails when the agent is not loaded (never bootstrapped, or after a logout): harmless.
        return [_Step(["launchctl", "bootout", f"{self.domain}/{LAUNCHD_LABEL}"], may_fail=True)]

    def manual_enable_hint(self) -> str:
        return f"launchctl bootstrap {self.domain} {self.plist}"

    def unreachable_reason(self, probe: CommandRecord) -> str:
        return (
            f"the launchd GUI session {self.domain} is not reachable ({_why(probe)}; usual in "
            "SSH or headless sessions)"
        )


def _why(record: CommandRecord) -> str:
    if record.error:
        return record.error
    detail = record.output.splitlines()[-1] if record.output else "no output"
    return f"exit status {record.returncode}: {detail}"


def _compare(path: Path, text: str) -> FileChange:
    try:
        same = path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        same = False
    return FileChange(path=str(path), action="unchanged" if same else "write")


def _write(path: Path, text: str) -> str | None:
    """Write `text` atomically with mode 0644; return an error message or None."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o644)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        return (
            f"cannot write {path}: {exc.strerror or exc}; make {path.parent} writable (or set "
            "XDG_CONFIG_HOME) and retry; the built-in spawner keeps serving meanwhile"
        )
    return None


def _remove(path: Path) -> str | None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        return f"cannot remove {path}: {exc.strerror or exc}; make {path.parent} writable and retry"
    return None
