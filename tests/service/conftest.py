"""The service suite: grite installed for real (pip + `grite daemon install`, or the .deb) and
used by a throwaway user under a real `systemd --user` manager (tests/service/manager.py).

Needs root and Linux; it fails, never skips, when a tool is missing (CI installs them: see
.ci/run). Under `-n N` the whole suite runs on one xdist worker, first and in file order
(tests/conftest.py: pytest_xdist_make_scheduler), because each module's tests build on one
another and the two install kinds share the machine's units; a machine-wide lock keeps two test
runs from installing the .deb at once.

The .deb under test is $GRITE_TEST_DEB (CI builds it with packaging/build-deb first); without
it, the suite builds one itself, cached by the source tree's content under /var/tmp. The pip
install uses wheels built from this tree. An "upgrade" installs the same tree with the version
bumped to `<version>+svctest1`: the .deb repacked with the new version and grite/__init__.py,
and a wheel of a copy of the tree; either way the build id (grite.ipc.protocol) changes.

Path checks: until the strict mode `GRITE_DAEMON=require` lands, a command that ran in-process
is found by the stderr mark GRITE_DEBUG=1 makes the client print (`fell_back`); both live in
this file only, so switching to the strict mode is a change here.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import select
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.service.manager import UserManager, sweep_stale

REPO = Path(__file__).resolve().parents[2]
BUMP = "+svctest1"
LOCK = Path("/run/lock/grite-service-tests.lock")
_LOCK_WAIT = 1800.0
_TOOLS = {
    "/lib/systemd/systemd": "systemd",
    "/lib/systemd/systemd-journald": "systemd",
    "journalctl": "systemd",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "runuser": "util-linux",
    "useradd": "passwd",
    "pgrep": "procps",
    "dpkg-deb": "dpkg",
    "git": "git",
}

# The one place that decides how a command proves it went through the daemon.
DAEMON_CHECK_ENV = {"GRITE_DEBUG": "1"}


# What a client prints on stderr under GRITE_DEBUG=1 when it ran a command in-process, then
# `(<cause>: <why>)` (grite.ipc.transport.FallbackTransport).
_FALLBACK_MARK = "grite: daemon not used"


def fell_back(stderr: str) -> bool:
    """Whether a command ran in-process instead of through the daemon."""
    return _FALLBACK_MARK in stderr


# --- machine preconditions -------------------------------------------------------------------


@pytest.fixture(scope="session")
def service_host() -> None:
    """Root on Linux with the tools; stale users of dead runs removed."""
    if platform.system() != "Linux":
        pytest.skip("systemd user managers exist on Linux only")
    if os.geteuid() != 0:
        pytest.fail(
            "the service suite needs root: it adds a throwaway user, runs a systemd user "
            "manager for it and installs the .deb (run the suite as root, as CI does)"
        )
    missing = sorted(
        {pkg for tool, pkg in _TOOLS.items() if not (os.path.exists(tool) or shutil.which(tool))}
    )
    if missing:
        pytest.fail(f"missing tools; install the Debian packages: {' '.join(missing)}")
    sweep_stale()


@pytest.fixture(scope="module")
def machine_lock(service_host: None) -> Iterator[None]:
    """One install at a time on this machine (the .deb and its units are machine-wide)."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as f:
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another service-suite run holds {LOCK}")
                time.sleep(1)
        yield


@pytest.fixture(scope="module")
def counts(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Numbers a module reports (commands, idle exits, ...): appended to $GRITE_SERVICE_COUNTS."""
    found: dict[str, Any] = {}
    yield found
    if not found:
        return
    line = json.dumps({"module": request.module.__name__.rsplit(".", 1)[-1], **found})
    print(f"\nservice counts: {line}")
    path = os.environ.get("GRITE_SERVICE_COUNTS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


# --- builds ----------------------------------------------------------------------------------


def source_files(root: Path = REPO) -> list[str]:
    """The tree's files as git sees them (tracked and new, not ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return [name for name in out.decode().split("\0") if name and (root / name).is_file()]


def version_of(root: Path = REPO) -> str:
    """pyproject.toml's version (a regex: the suite also runs where tomllib is missing)."""
    found = re.search(r'(?m)^version = "([^"]+)"$', (root / "pyproject.toml").read_text())
    assert found, "pyproject.toml has no version line"
    return found.group(1)


def bump_tree(dest: Path) -> str:
    """Copy the source tree to `dest` with the version bumped by BUMP; return the new version."""
    for name in source_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    old = version_of()
    new = old + BUMP
    for name, pattern in (
        ("pyproject.toml", 'version = "{}"'),
        ("grite/__init__.py", '__version__ = "{}"'),
    ):
        path = dest / name
        text = path.read_text()
        assert text.count(pattern.format(old)) == 1, f"{name} does not say {pattern.format(old)}"
        path.write_text(text.replace(pattern.format(old), pattern.format(new)))
    return new


def _world_readable_dir(prefix: str) -> Path:
    # The throwaway user reads these: pytest's tmp dirs are root-only.
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def wheelhouse(service_host: None) -> Iterator[tuple[Path, Path, str]]:
    """(wheels of grite and its dependencies, a directory with the bumped grite's wheel, the
    bumped version). Apart, because `==0.6.0` also matches `0.6.0+svctest1` (PEP 440)."""
    wheels = _world_readable_dir("grite-wheels-")
    newer = _world_readable_dir("grite-newer-")
    bumped = Path(tempfile.mkdtemp(prefix="grite-bumped-"))
    pip = ["/usr/bin/python3", "-m", "pip", "wheel", "--quiet", "--wheel-dir"]
    try:
        subprocess.run([*pip, str(wheels), str(REPO)], check=True, timeout=900, capture_output=True)
        new_version = bump_tree(bumped)
        subprocess.run(
            [*pip, str(newer), "--no-deps", str(bumped)],
            check=True,
            timeout=900,
            capture_output=True,
        )
        for path in [*wheels.iterdir(), *newer.iterdir()]:
            path.chmod(0o644)
        yield wheels, newer, new_version
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"building wheels failed: {exc.stderr.decode(errors='replace')[-3000:]}")
    finally:
        for path in (wheels, newer, bumped):
            shutil.rmtree(path, ignore_errors=True)


def _tree_digest() -> str:
    digest = hashlib.sha256()
    for name in sorted(source_files()):
        digest.update(name.encode() + b"\0" + (REPO / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _build_deb() -> Path:
    """packaging/build-deb's .deb for this tree, built once per tree content."""
    out = Path("/var/tmp/grite-test-debs") / _tree_digest()
    found = sorted(out.glob("grite_*.deb")) if out.is_dir() else []
    if found:
        return found[0]
    proc = subprocess.run(
        [str(REPO / "packaging" / "build-deb"), "--out", str(out)],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"packaging/build-deb failed:\n{proc.stdout}{proc.stderr}")
    return sorted(out.glob("grite_*.deb"))[0]


def repack_bumped(deb: Path, dest: Path) -> tuple[Path, str]:
    """The .deb with its version and grite/__init__.py's bumped by BUMP (a real, newer .deb)."""
    root = dest / "root"
    subprocess.run(["dpkg-deb", "--raw-extract", str(deb), str(root)], check=True, timeout=300)
    control = root / "DEBIAN" / "control"
    text = control.read_text()
    old = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("Version: "))
    new = old + BUMP
    control.write_text(text.replace(f"Version: {old}\n", f"Version: {new}\n"))
    init = next(root.glob("usr/lib/grite/lib/python3*/site-packages/grite/__init__.py"))
    init.write_text(init.read_text().replace(f'"{version_of()}"', f'"{version_of()}{BUMP}"'))
    rel = str(init.relative_to(root))
    md5 = hashlib.md5(init.read_bytes()).hexdigest()
    sums = root / "DEBIAN" / "md5sums"
    sums.write_text(
        "".join(
            f"{md5}  {rel}\n" if line.endswith(f"  {rel}") else line + "\n"
            for line in sums.read_text().splitlines()
        )
    )
    out = dest / f"grite_{new}.deb"
    subprocess.run(
        ["dpkg-deb", "-Zgzip", "--root-owner-group", "--build", str(root), str(out)],
        check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    return out, new


@pytest.fixture(scope="session")
def deb_packages(service_host: None) -> Iterator[tuple[Path, Path, str]]:
    """(the .deb under test, the bumped .deb, the bumped Debian version)."""
    given = os.environ.get("GRITE_TEST_DEB")
    deb = Path(given) if given else _build_deb()
    if not deb.is_file():
        pytest.fail(f"GRITE_TEST_DEB={given} is not a file; build it with packaging/build-deb")
    work = _world_readable_dir("grite-debs-")
    try:
        bumped, version = repack_bumped(deb, work)
        yield deb, bumped, version
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- grite as the throwaway user -------------------------------------------------------------


@dataclass
class Outcome:
    """One command a client ran."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    started: float
    ended: float

    @property
    def fell_back(self) -> bool:
        return fell_back(self.stderr)


@dataclass
class GriteUser:
    """A user with grite installed one way; commands run as that user, in their repository."""

    manager: UserManager
    kind: str  # "pip" or "deb"
    path: str  # prepended to PATH: the venv's bin/ for pip, "" for the .deb (/usr/bin)
    python: str  # the interpreter that runs this install's grite
    daemon: str  # the grite-daemon the units run
    repo: Path = field(init=False)

    def __post_init__(self) -> None:
        self.repo = self.manager.home / "repo"

    def grite(self, *args: str, cwd: Path | None = None, timeout: float = 120) -> Outcome:
        started = time.monotonic()
        proc = self.manager.run(
            ["grite", *args], cwd=cwd or self.repo, extra_env=DAEMON_CHECK_ENV, path=self.path,
            timeout=timeout,
        )  # fmt: skip
        return Outcome(
            list(args), proc.returncode, proc.stdout, proc.stderr, started, time.monotonic()
        )

    def ok(self, *args: str, cwd: Path | None = None) -> Outcome:
        """Run a command that must succeed through the daemon."""
        out = self.grite(*args, cwd=cwd)
        assert out.returncode == 0, f"grite {' '.join(args)}: {out.stdout}{out.stderr}"
        assert not out.fell_back, f"grite {' '.join(args)} ran in-process: {out.stderr}"
        return out

    def status(self) -> dict[str, Any]:
        out = self.grite("daemon", "status", "--json")
        assert out.returncode == 0, out.stderr
        data: dict[str, Any] = json.loads(out.stdout)["data"]
        return data

    def build_id(self) -> str:
        """The build id this install's clients send (computed from its files, as they do)."""
        proc = self.manager.run(
            [self.python, "-c", "from grite.ipc.protocol import compute_build_id as c; print(c())"],
            check=True,
        )
        return proc.stdout.strip()

    def service_pid(self) -> int:
        return int(self.manager.unit_property("grite.service", "MainPID") or 0)

    def set_idle_timeout(self, seconds: int) -> None:
        """A drop-in that runs the unit's daemon with `--idle-timeout seconds`."""
        dropin = self.manager.home / ".config" / "systemd" / "user" / "grite.service.d"
        self.manager.run(["mkdir", "-p", str(dropin)], check=True)
        conf = dropin / "idle.conf"
        conf.write_text(
            f"[Service]\nExecStart=\nExecStart={self.daemon} --idle-timeout {seconds}\n"
        )
        os.chown(conf, self.manager.uid, self.manager.uid)
        self.manager.systemctl("daemon-reload", check=True)
        # A running daemon keeps its old command line; the next one starts with the new one.
        self.manager.systemctl("stop", "grite.service", check=True)

    def remove_dropin(self) -> None:
        shutil.rmtree(self.manager.home / ".config" / "systemd" / "user" / "grite.service.d")
        self.manager.systemctl("daemon-reload", check=True)

    def daemon_processes(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-U", str(self.manager.uid), "-f", "grite-daemon|grite.daemon"],
            capture_output=True, text=True, check=False, timeout=10,
        )  # fmt: skip
        return [int(pid) for pid in out.stdout.split()]


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait for `pid` to exit (a pidfd, not polling); True when it has."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def make_repo(user: GriteUser) -> None:
    m = user.manager
    m.run(["git", "init", "-q", "-b", "main", str(user.repo)], check=True)
    m.run(["git", "config", "user.email", "svc@example.com"], cwd=user.repo, check=True)
    m.run(["git", "config", "user.name", "Service Test"], cwd=user.repo, check=True)


class ClientLoop:
    """Threads that run grite commands as the user until stopped, recording each outcome.

    Each thread alternates `issue create` and `issue list --json`; `wait_for(n)` blocks until n
    more commands have finished (a condition variable, not a sleep).
    """

    def __init__(self, user: GriteUser, threads: int = 2, tag: str = "loop") -> None:
        self.user = user
        self.tag = tag
        self.outcomes: list[Outcome] = []
        self.created: list[str] = []
        self._done = threading.Condition()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def __enter__(self) -> ClientLoop:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, index: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            if n % 2:
                title = f"{self.tag}-{index}-{n}"
                out = self.user.grite("issue", "create", "--title", title, "--json")
                if out.returncode == 0:
                    with self._done:
                        self.created.append(title)
            else:
                out = self.user.grite("issue", "list", "--json", "--limit", "5")
            with self._done:
                self.outcomes.append(out)
                self._done.notify_all()

    def wait_for(self, more: int, timeout: float = 300) -> None:
        with self._done:
            target = len(self.outcomes) + more
            if not self._done.wait_for(lambda: len(self.outcomes) >= target, timeout):
                raise AssertionError(f"the client loop did not finish {more} commands in time")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=300)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.returncode != 0]

    @property
    def fallbacks(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.fell_back]


def describe(outcomes: list[Outcome]) -> str:
    return "\n".join(
        f"grite {' '.join(o.argv)} -> {o.returncode}: {o.stderr.strip()[-400:]}" for o in outcomes
    )
