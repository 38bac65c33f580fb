"""A real `systemd --user` manager, with its own journald, for a throwaway user.

Adapted from shared/recipes/systemd-user-manager.sh for machines whose PID 1 is not systemd
(containers, CI VMs), as root:

- systemd refuses to run a user instance unless /run/systemd/system/ exists, so the manager runs
  in a private mount namespace with a tmpfs over /run/systemd (nothing changes for the machine);
- a journald runs in that namespace too (volatile storage on a tmpfs over /run/log, no kernel
  messages), so the manager's own messages and the daemon's stderr land in a real journal, as
  on a desktop; the user is in group systemd-journal, so `journal()` runs the very
  `journalctl --user ...` a user would;
- the manager gets a delegated cgroup (user.slice/user-UID.slice/user@UID.service in every
  mounted hierarchy, owned by the user) and XDG_RUNTIME_DIR=/run/user/UID (0700), as logind
  would set up;
- it starts with a clean environment (`env -i`), as user@.service does, not root's.

Everything a manager creates is recorded under STATE_ROOT; `sweep_stale()` removes what a test
run that died (SIGKILL, power loss) left behind, and `stop()` removes the user, its processes,
its cgroups and its runtime directory even when a test failed. Processes are ended by pid.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["STATE_ROOT", "UserManager", "sweep_stale"]

STATE_ROOT = Path("/run/grite-service-tests")
SYSTEMD = "/lib/systemd/systemd"
JOURNALD = "/lib/systemd/systemd-journald"
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 20.0


def _cgroup_dirs(uid: int) -> list[Path]:
    """user@UID.service in the named systemd hierarchy and the unified one, or cgroup2 only."""
    leaf = f"user.slice/user-{uid}.slice/user@{uid}.service"
    root = Path("/sys/fs/cgroup")
    if (root / "systemd").is_dir():
        dirs = [root / "systemd" / leaf]
        if (root / "unified").is_dir():
            dirs.append(root / "unified" / leaf)
        return dirs
    return [root / leaf]


def _pids_of(uid: int) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-U", str(uid)], capture_output=True, text=True, check=False, timeout=10
    )
    return [int(pid) for pid in out.stdout.split()]


def _kill_pids(pids: Sequence[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _remove_cgroups(uid: int) -> None:
    # Children first: the manager made app.slice/grite.service and friends under its own.
    for top in _cgroup_dirs(uid):
        if not top.exists():
            continue
        for path in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir():
                try:
                    path.rmdir()
                except OSError:
                    pass
        for path in (top, top.parent):
            try:
                path.rmdir()
            except OSError:
                pass


def _wait_gone(pids: Sequence[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)


def _remove_user(name: str, uid: int | None) -> None:
    if uid is not None:
        for _ in range(3):
            pids = _pids_of(uid)
            if not pids:
                break
            _kill_pids(pids)
            _wait_gone(pids, 5)
        _remove_cgroups(uid)
        shutil.rmtree(f"/run/user/{uid}", ignore_errors=True)
    subprocess.run(
        ["userdel", "--force", "--remove", name], capture_output=True, check=False, timeout=30
    )


def sweep_stale() -> list[str]:
    """Remove the users (and journalds) of earlier runs whose test process no longer exists.

    Returns:
        The names of the users removed.
    """
    removed: list[str] = []
    if not STATE_ROOT.is_dir():
        return removed
    for state in STATE_ROOT.iterdir():
        try:
            owner = int((state / "owner").read_text())
            os.kill(owner, 0)
            continue  # its test run is alive: not ours to touch
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            pass
        try:
            journald = int((state / "journald.pid").read_text())
            _kill_pids([journald])
        except (OSError, ValueError):
            pass
        try:
            uid: int | None = pwd.getpwnam(state.name).pw_uid
        except KeyError:
            uid = None
        _remove_user(state.name, uid)
        shutil.rmtree(state, ignore_errors=True)
        removed.append(state.name)
    return removed


class UserManager:
    """A throwaway user with a running `systemd --user` and journald.

    Use `UserManager.create()`, then `start()`; `stop()` removes all of it (idempotent).
    """

    def __init__(self, name: str) -> None:
        entry = pwd.getpwnam(name)
        self.name = name
        self.uid = entry.pw_uid
        self.home = Path(entry.pw_dir)
        self.runtime_dir = Path(f"/run/user/{self.uid}")
        self.state = STATE_ROOT / name
        self.log = self.state / "manager.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.manager_pid: int | None = None

    @classmethod
    def create(cls, prefix: str = "gsvc") -> UserManager:
        """Add a user with a home directory; record it for sweep_stale() first."""
        name = f"{prefix}{secrets.token_hex(4)}"
        state = STATE_ROOT / name
        state.mkdir(parents=True, mode=0o755)
        (state / "owner").write_text(str(os.getpid()))
        subprocess.run(
            # systemd-journal: so that the user reads the journal with `journalctl --user`.
            [
                "useradd",
                "--create-home",
                "--user-group",
                "--groups",
                "systemd-journal",
                "--shell",
                "/bin/sh",
                name,
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        return cls(name)

    # -- running things as the user ---------------------------------------------------------

    def env(self, extra: Mapping[str, str] | None = None, path: str = "") -> list[str]:
        """`runuser -u USER -- env -i ...`: a login-like environment, nothing of root's."""
        variables = {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "SHELL": "/bin/sh",
            "PATH": f"{path + ':' if path else ''}/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            **(extra or {}),
        }
        return ["runuser", "-u", self.name, "--", "env", "-i"] + [
            f"{key}={value}" for key, value in variables.items()
        ]

    def enter(self, cwd: Path | None = None) -> list[str]:
        """The prefix that runs a command in the manager's mount namespace (once it runs), in
        `cwd` as that namespace sees it (a cwd set before entering would stay the host's)."""
        if self.manager_pid is not None and os.path.exists(f"/proc/{self.manager_pid}"):
            wd = [f"--wd={cwd}"] if cwd is not None else []
            return ["nsenter", f"--target={self.manager_pid}", "--mount", *wd, "--"]
        return []

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        path: str = "",
        timeout: float = 120,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` as the user, capturing text output.

        Once the manager runs, inside its mount namespace, as a user's shell shares its
        session's: the daemon declines clients of another mount namespace (docs/security.md),
        and the manager's namespace here exists only for the tests' journald mounts.
        """
        proc = subprocess.run(
            [*self.enter(cwd or self.home), *self.env(extra_env, path), *argv],
            cwd=cwd or self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} as {self.name} exited {proc.returncode}:\n"
                f"{proc.stdout}{proc.stderr}"
            )
        return proc

    def systemctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return self.run(["systemctl", "--user", *args], timeout=60, check=check)

    def unit_property(self, unit: str, name: str) -> str:
        return self.systemctl("show", f"--property={name}", "--value", unit).stdout.strip()

    def journal(self, *args: str) -> str:
        """`journalctl --user ARGS` as the user, inside the manager's namespace."""
        assert self.manager_pid is not None
        proc = subprocess.run(
            ["nsenter", f"--target={self.manager_pid}", "--mount", "--", *self.env(),
             "journalctl", "--user", "--no-pager", *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        return proc.stdout + proc.stderr

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start journald and the user manager; return once `systemctl --user` answers."""
        self.runtime_dir.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.runtime_dir, self.uid, self.uid)
        os.chmod(self.runtime_dir, 0o700)
        cgroups = _cgroup_dirs(self.uid)
        for path in cgroups:
            path.mkdir(parents=True, exist_ok=True)
            for sub in [path, *path.rglob("*")]:
                os.chown(sub, self.uid, self.uid)
        env = " ".join(shlex.quote(word) for word in self.env({"SYSTEMD_LOG_TARGET": "journal"}))
        script = f"""
set -e
mount -t tmpfs tmpfs /run/systemd
mkdir -p /run/systemd/system /run/systemd/journal /run/systemd/journald.conf.d
printf '[Journal]\\nStorage=persistent\\nReadKMsg=no\\nRateLimitBurst=0\\n' \\
  >/run/systemd/journald.conf.d/grite-tests.conf
mkdir -p /run/log && mount -t tmpfs tmpfs /run/log
# "Persistent" storage on a tmpfs, as a desktop keeps it: journald then writes each user's
# entries to user-UID.journal, which `journalctl --user` reads. The group and mode are what
# systemd-tmpfiles sets on a real system.
mkdir -p /var/log/journal && mount -t tmpfs -o mode=2755 tmpfs /var/log/journal
chgrp systemd-journal /var/log/journal
{JOURNALD} </dev/null >/dev/null 2>&1 &
echo $! >{shlex.quote(str(self.state / "journald.pid"))}
i=0
while [ ! -S /run/systemd/journal/stdout ]; do
  i=$((i + 1)); [ $i -lt 200 ] || {{ echo "journald did not start" >&2; exit 3; }}
  sleep 0.05
done
journalctl --flush
for d in {" ".join(shlex.quote(str(p)) for p in cgroups)}; do echo $$ >"$d/cgroup.procs"; done
exec {env} {SYSTEMD} --user
"""
        with open(self.log, "wb") as log:
            self._proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            if self.systemctl("show-environment").returncode == 0:
                pids = subprocess.run(
                    ["pgrep", "-U", str(self.uid), "-x", "systemd"],
                    capture_output=True, text=True, check=False, timeout=10,
                ).stdout.split()  # fmt: skip
                if pids:
                    self.manager_pid = int(pids[0])
                    return
            time.sleep(0.1)
        raise AssertionError(
            f"the user manager of {self.name} did not start: {self.log.read_text(errors='replace')}"
        )

    def stop(self) -> None:
        """Stop the manager and journald, then remove the user and everything it had."""
        if self._proc is not None and self._proc.poll() is None:
            self.systemctl("exit")
            try:
                self._proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _kill_pids([self._proc.pid])
                self._proc.wait(timeout=_STOP_TIMEOUT)
        try:
            _kill_pids([int((self.state / "journald.pid").read_text())])
        except (OSError, ValueError):
            pass
        _remove_user(self.name, self.uid)
        shutil.rmtree(self.state, ignore_errors=True)
