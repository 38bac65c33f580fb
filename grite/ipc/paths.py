"""Where the per-user daemon lives: runtime directory, socket, lock, pid and log paths.

Resolution: GRITE_DAEMON_SOCKET names the socket directly (its directory then holds the locks
and pid file); else `$XDG_RUNTIME_DIR/grite/` when XDG_RUNTIME_DIR is set and is a directory
owned by us with mode 0700; else `${TMPDIR:-/tmp}/grite-<uid>/`. The directory is the access
boundary, so `ensure_runtime_dir` creates it 0700 and refuses one that is not ours, not 0700 or
a symlink. The daemon derives every runtime path from its socket path's directory, so a client
and the daemon it spawns always agree.

Another user can create `/tmp/grite-<uid>` first (a symlink, or a directory of theirs): we can
neither use nor fix it. Then grite uses a directory of its own with an unpredictable name,
`${TMPDIR:-/tmp}/grite-<uid>-<random>/` (mkdtemp: 0700, ours, a name nobody can create first),
recorded in `$XDG_STATE_HOME/grite/runtime-dir` (the user's own state directory) so every client
and daemon of the user finds the same one; `RuntimePaths.note` says why, for `grite daemon
status` and GRITE_DEBUG. Only this case touches the file system beyond an lstat (once: later
runs read the record).

We read the environment directly instead of through pyxdg (which grite.storage.config uses to
search the config files, in the daemon only): pyxdg snapshots the environment when first
imported, which a long-lived process that changes it (tests, grite.Client users) would get
wrong, its get_runtime_dir() is a bare lookup with none of the ownership checks we need, and
importing it costs about a millisecond (python -X importtime) that every warm command would
pay. Standard library only: this is on the client's hot path.
"""

from __future__ import annotations

import os
import stat
import sys

from grite.model.errors import Environment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "MAX_SOCKET_PATH",
    "RuntimePaths",
    "build_socket",
    "check_socket_path",
    "daemon_child_env",
    "ensure_runtime_dir",
    "paths_for_socket",
    "runtime_paths",
    "user_config_file",
]

# sun_path is 108 bytes on Linux and 104 on macOS, one of which is the terminating NUL.
MAX_SOCKET_PATH = 103 if sys.platform == "darwin" else 107

SOCKET_NAME = "daemon.sock"
BUILD_SOCKET_PREFIX = "daemon-"
PID_NAME = "daemon.pid"
LOCK_NAME = "daemon.lock"
SPAWN_LOCK_NAME = "spawn.lock"
LOG_NAME = "daemon.log"
FALLBACK_LOG_NAME = "fallbacks.log"
RUNTIME_RECORD_NAME = "runtime-dir"

# Variables a spawned daemon keeps; everything else (the caller's pipes, LISTEN_*,
# NOTIFY_SOCKET, GIT_* of one repository) must not leak into a process serving every repo.
_CHILD_ENV_KEYS = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
_CHILD_ENV_PREFIXES = ("XDG_", "GRITE_", "PYTHON")


class RuntimePaths:
    """Every file of the per-user daemon. All but the two logs live in runtime_dir.

    A plain class rather than a NamedTuple: `typing` costs the `grite` command ~3 ms to import.
    """

    __slots__ = (
        "fallback_log",
        "lock_file",
        "log_file",
        "note",
        "pid_file",
        "runtime_dir",
        "socket",
        "spawn_lock",
    )

    def __init__(
        self,
        *,
        runtime_dir: str,
        socket: str,
        pid_file: str,
        lock_file: str,
        spawn_lock: str,
        log_file: str,
        fallback_log: str,
        note: str = "",
    ) -> None:
        self.runtime_dir = runtime_dir
        self.socket = socket
        self.pid_file = pid_file
        self.lock_file = lock_file
        self.spawn_lock = spawn_lock
        self.log_file = log_file
        self.fallback_log = fallback_log  # what clients ran in-process instead of the daemon
        self.note = note  # why runtime_dir is not the usual one ("" when it is)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RuntimePaths):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __hash__(self) -> int:
        return hash(self.socket)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"RuntimePaths({fields})"


def _state_dir(environ: Mapping[str, str]) -> str:
    state = environ.get("XDG_STATE_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(state, "grite")


def _xdg_runtime_base(environ: Mapping[str, str]) -> str | None:
    base = environ.get("XDG_RUNTIME_DIR")
    if not base or not os.path.isabs(base):
        return None
    try:
        st = os.lstat(base)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return base


def _owned_dir(path: str) -> str:
    """Why `path` cannot be our runtime directory ("" when it can, or does not exist)."""
    try:
        st = os.lstat(path)
    except OSError:
        return ""
    if stat.S_ISLNK(st.st_mode):
        return "is a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if st.st_uid != os.getuid():
        return f"is owned by uid {st.st_uid}"
    return ""


def _recorded_dir(record: str, primary: str) -> str | None:
    """The private runtime directory recorded earlier, if it is still ours and safe."""
    try:
        with open(record, encoding="utf-8") as f:
            path = f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if os.path.dirname(path) != os.path.dirname(primary) or not os.path.basename(path).startswith(
        os.path.basename(primary) + "-"
    ):
        return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    ok = stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077
    return path if ok else None


def _private_dir(primary: str, record: str) -> str | None:
    """Make a new private runtime directory next to `primary` and record it (None: cannot)."""
    # Deliberately lazy: reached once per user and machine, when /tmp/grite-<uid> was taken.
    import tempfile

    try:
        path = tempfile.mkdtemp(
            prefix=os.path.basename(primary) + "-", dir=os.path.dirname(primary)
        )
        os.makedirs(os.path.dirname(record), mode=0o700, exist_ok=True)
        tmp = f"{record}.{os.urandom(8).hex()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(path + "\n")
        os.replace(tmp, record)
    except OSError:
        return None
    # Two clients racing here each made one; the record names the last: use that one.
    return _recorded_dir(record, primary) or path


def _tmp_runtime_dir(environ: Mapping[str, str]) -> tuple[str, str]:
    """(runtime directory, note) when XDG_RUNTIME_DIR is not usable."""
    primary = os.path.join(environ.get("TMPDIR") or "/tmp", f"grite-{os.getuid()}")
    why = _owned_dir(primary)
    if not why:
        return primary, ""
    record = os.path.join(_state_dir(environ), RUNTIME_RECORD_NAME)
    private = _recorded_dir(record, primary) or _private_dir(primary, record)
    if private is None:
        return primary, ""  # ensure_runtime_dir refuses it, naming the owner
    return private, (
        f"{primary} {why}, not yours (another user created it first); using {private} "
        f"instead (recorded in {record})"
    )


def runtime_paths(environ: Mapping[str, str] | None = None) -> RuntimePaths:
    """Resolve the daemon's paths without touching the file system beyond one lstat.

    Args:
        environ: the environment to read (default os.environ).

    Returns:
        The paths; nothing is created (see ensure_runtime_dir).
    """
    env = os.environ if environ is None else environ
    override = env.get("GRITE_DAEMON_SOCKET")
    note = ""
    if override:
        sock = os.path.abspath(override)
        runtime_dir = os.path.dirname(sock)
    else:
        base = _xdg_runtime_base(env)
        if base is not None:
            runtime_dir = os.path.join(base, "grite")
        else:
            runtime_dir, note = _tmp_runtime_dir(env)
        sock = os.path.join(runtime_dir, SOCKET_NAME)
    # A build's own socket (daemon-<build id>.sock, see grite.ipc.transport) has its own pid,
    # lifetime-lock and spawn-lock files, so its daemon never touches the main daemon's.
    name = os.path.basename(sock)
    if name.startswith(BUILD_SOCKET_PREFIX) and name.endswith(".sock"):
        stem = name[: -len(".sock")]
        pid, lock, spawn = f"{stem}.pid", f"{stem}.lock", f"{stem}.spawn.lock"
    else:
        pid, lock, spawn = PID_NAME, LOCK_NAME, SPAWN_LOCK_NAME
    state = _state_dir(env)
    return RuntimePaths(
        runtime_dir=runtime_dir,
        socket=sock,
        pid_file=os.path.join(runtime_dir, pid),
        lock_file=os.path.join(runtime_dir, lock),
        spawn_lock=os.path.join(runtime_dir, spawn),
        log_file=os.path.join(state, LOG_NAME),
        fallback_log=os.path.join(state, FALLBACK_LOG_NAME),
        note=note,
    )


def build_socket(paths: RuntimePaths, build_id: str) -> str:
    """The socket of the daemon a build runs for itself when the main socket serves another
    installation's build: `daemon-<build id>.sock` next to the main socket."""
    return os.path.join(paths.runtime_dir, f"{BUILD_SOCKET_PREFIX}{build_id}.sock")


def paths_for_socket(socket_path: str, environ: Mapping[str, str] | None = None) -> RuntimePaths:
    """The paths a daemon serving `socket_path` uses (all next to the socket)."""
    env = dict(os.environ if environ is None else environ)
    env["GRITE_DAEMON_SOCKET"] = socket_path
    return runtime_paths(env)


def check_socket_path(path: str) -> None:
    """Refuse a socket path the kernel would truncate.

    Raises:
        Environment: if the path is longer than MAX_SOCKET_PATH bytes.
    """
    size = len(os.fsencode(path))
    if size > MAX_SOCKET_PATH:
        raise Environment(
            f"daemon socket path {path!r} is {size} bytes, over the {MAX_SOCKET_PATH}-byte "
            "limit of Unix sockets; set GRITE_DAEMON_SOCKET or TMPDIR to a shorter path",
            {"path": path, "bytes": size},
        )


def _check_dir(path: str, st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise Environment(
            f"runtime directory {path} is a symlink; remove it and grite will recreate it",
            {"path": path},
        )
    if not stat.S_ISDIR(st.st_mode):
        raise Environment(
            f"runtime directory {path} is not a directory; remove it and retry",
            {"path": path},
        )
    if st.st_uid != os.getuid():
        raise Environment(
            f"runtime directory {path} is owned by uid {st.st_uid}, not you; remove it or set "
            "GRITE_DAEMON_SOCKET to a path in a directory you own",
            {"path": path},
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        raise Environment(
            f"runtime directory {path} has mode {stat.S_IMODE(st.st_mode):o}, expected 700; "
            f"run `chmod 700 {path}`",
            {"path": path},
        )


def ensure_runtime_dir(paths: RuntimePaths) -> None:
    """Create the runtime directory 0700 if missing and check it is safe to use.

    Raises:
        Environment: if the directory is a symlink, not ours, not mode 0700, cannot be
            created, or the socket path is too long.
    """
    check_socket_path(paths.socket)
    path = paths.runtime_dir
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            os.mkdir(path, 0o700)
            # mkdir honours the umask; make the mode exact rather than trusting it.
            os.chmod(path, 0o700)
        except FileExistsError:
            pass  # a concurrent client created it: checked below like any other
        except OSError as exc:
            raise Environment(
                f"cannot create runtime directory {path}: {exc.strerror}; "
                "check permissions or set GRITE_DAEMON_SOCKET",
                {"path": path},
            ) from exc
        st = os.lstat(path)
    except OSError as exc:
        raise Environment(
            f"cannot inspect runtime directory {path}: {exc.strerror}", {"path": path}
        ) from exc
    _check_dir(path, st)


def user_config_file(environ: Mapping[str, str] | None = None) -> str:
    """`$XDG_CONFIG_HOME/grite/config.toml` (default ~/.config/grite/config.toml), the file
    `grite daemon install` derives the systemd unit directory from; the daemon searches the
    config files (this one first) with pyxdg: grite.storage.config.user_config_files."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".config"
    )
    return os.path.join(base, "grite", "config.toml")


def daemon_child_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The minimal environment handed to a spawned daemon."""
    env = os.environ if environ is None else environ
    return {
        k: v for k, v in env.items() if k in _CHILD_ENV_KEYS or k.startswith(_CHILD_ENV_PREFIXES)
    }
