"""Repository, actor and user config files (TOML, as grite 0.5.3 reads them:
https://github.com/neul-labs/grite/blob/main/crates/libgrite-core/src/config.rs).

`.git/grite/config.toml` (RepoConfig), `.git/grite/actors/<id>/config.toml` (ActorConfig) and the
user configs (daemon settings): `$XDG_CONFIG_HOME/grite/config.toml`, then `grite/config.toml`
in each `$XDG_CONFIG_DIRS` directory (`/etc/xdg/grite/config.toml`: a machine-wide default),
found with pyxdg and merged key by key, the user's file first. Keys that are unset are omitted
when writing, as grite 0.5.3 does, so either implementation reads the other's files. Writes are
atomic (temp file + rename) so a crash never leaves half a config.

FileCache keeps parsed files until they change. A warm daemon writes many times a second, and
each write used to read and parse the repository's and the actor's config.toml several times
over. `FileCache.load` parses a file again only when its stat (inode, mtime, size) changed:
files are replaced by rename (write_atomic) or edited in place, and either changes the stat.
The values are shared between callers: treat them as read-only. Thread-safe.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import threading
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import msgspec
import tomli_w

from grite.model.errors import Environment, NotFound
from grite.storage.unwritable import REMEDY, write_failure

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "ActorConfig",
    "DaemonSettings",
    "FileCache",
    "RepoConfig",
    "SnapshotSettings",
    "SyncSettings",
    "accepted_unsigned_actors",
    "actor_dir",
    "effective_lock_policy",
    "effective_verify_policy",
    "list_actor_ids",
    "load_actor_config",
    "load_repo_config",
    "load_user_config",
    "merge_user_configs",
    "save_actor_config",
    "save_repo_config",
    "user_config_files",
    "open_new_temp",
    "write_atomic",
]

LockPolicy = Literal["off", "warn", "require"]
VerifyPolicy = Literal["off", "warn", "require"]
_S = TypeVar("_S", bound=msgspec.Struct)
T = TypeVar("T")
_Stamp = tuple[int, int, int] | None


class SnapshotSettings(msgspec.Struct, kw_only=True, omit_defaults=True):
    max_events: int | None = None
    max_age_days: int | None = None


class DaemonSettings(msgspec.Struct, kw_only=True, omit_defaults=True):
    idle_timeout_seconds: int | None = None


class SyncSettings(msgspec.Struct, kw_only=True, omit_defaults=True):
    # The git remote that `grite sync` uses by default and that arbitrates leases (claims
    # and `grite lock`); unset means `origin`.
    remote: str | None = None


class RepoConfig(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`.git/grite/config.toml`. The policies are kept as written: any string grite 0.5.3
    runs with is accepted here too, and read through effective_lock_policy and
    effective_verify_policy."""

    default_actor: str | None = None
    lock_policy: str | None = None
    verify_signatures: str | None = None
    # Actor ids whose unsigned dependency and context events pass verify_signatures =
    # "require": grite 0.5.3 never signs those kinds (ours, not 0.5.3's).
    accept_unsigned_from: list[str] | None = None
    snapshot: SnapshotSettings | None = None
    daemon: DaemonSettings | None = None
    sync: SyncSettings | None = None


class ActorConfig(msgspec.Struct, kw_only=True, omit_defaults=True):
    actor_id: str
    label: str | None = None
    created_ts: int | None = None
    public_key: str | None = None
    key_scheme: str | None = None


class UserConfig(msgspec.Struct, kw_only=True, omit_defaults=True):
    daemon: DaemonSettings | None = None


_POLICIES = ("off", "warn", "require")


def _policy(
    value: str | None, key: str, default: str, synonyms: dict[str, str]
) -> tuple[str, str | None]:
    if value is None:
        return default, None
    word = value.lower()
    word = synonyms.get(word, word)
    if word in _POLICIES:
        return word, None
    accepted = ", ".join(_POLICIES + tuple(synonyms))
    return default, (
        f'.git/grite/config.toml: {key} = "{value}" is not one of {accepted}; '
        f'using "{default}", as grite 0.5.3 does'
    )


def effective_lock_policy(cfg: RepoConfig) -> tuple[LockPolicy, str | None]:
    """The lock policy grite 0.5.3 would apply, and a warning when the value is unknown.

    Like 0.5.3 (https://github.com/neul-labs/grite, crates/libgrite-core/src/lock.rs
    `LockPolicy::from_str`, config.rs `get_lock_policy`): lowercased, and an unknown value
    falls back to "warn".
    """
    return _policy(cfg.lock_policy, "lock_policy", "warn", {})  # type: ignore[return-value]


def effective_verify_policy(cfg: RepoConfig) -> tuple[VerifyPolicy, str | None]:
    """The signature policy, and a warning when the value is unknown.

    Lowercased and falling back to "off" like 0.5.3 (crates/libgrite-core/src/signing.rs
    `VerificationPolicy::from_str`, config.rs `get_verification_policy`); "reject", the word
    0.5.3's documentation uses (docs/data-model.md), means "require".
    """
    return _policy(cfg.verify_signatures, "verify_signatures", "off", {"reject": "require"})  # type: ignore[return-value]


def accepted_unsigned_actors(cfg: RepoConfig) -> frozenset[bytes]:
    """The actor ids of `accept_unsigned_from` (malformed entries are ignored)."""
    found = set()
    for text in cfg.accept_unsigned_from or ():
        try:
            raw = bytes.fromhex(text.strip())
        except ValueError:
            continue
        if len(raw) == 16:
            found.add(raw)
    return frozenset(found)


def open_new_temp(directory: str, stem: str, mode: int = 0o600) -> tuple[int, str]:
    """Create a new file in `directory` under an unpredictable name; (write fd, its path).

    O_EXCL | O_NOFOLLOW: a name someone planted (a symlink to the user's ~/.bashrc) is never
    opened, and a random name cannot be planted in advance.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    while True:
        tmp = os.path.join(directory, f".{stem}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue  # 2**64 names: only a planted file collides, and only by luck


def write_atomic(path: str, data: bytes, mode: int = 0o644, remedy: str = REMEDY) -> None:
    """Write `data` to `path` through a new temp file and rename, so readers see old or new
    (the rename replaces a symlink at `path` itself, never what it points to). `remedy` is
    the advice a failure gives (default: for files under .git/grite)."""
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = open_new_temp(directory, os.path.basename(path), mode)
    except OSError as exc:
        raise write_failure(path, exc, remedy) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise write_failure(path, exc, remedy) from exc
        raise


_RECREATES_DEFAULTS = "fix or delete it (grite recreates defaults)"


def _load_toml(path: str, type_: type[Any], remedy: str = _RECREATES_DEFAULTS) -> Any:
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        return None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise Environment(
            f"config file {path} is not valid TOML ({exc}); {remedy}",
            {"path": path},
        ) from exc
    except OSError as exc:
        raise Environment(
            f"cannot read config file {path}: {exc.strerror}", {"path": path}
        ) from exc
    try:
        return msgspec.convert(raw, type_)
    except msgspec.ValidationError as exc:
        raise Environment(
            f"config file {path} has an invalid value ({exc}); {remedy}",
            {"path": path},
        ) from exc


def _dump_toml(value: msgspec.Struct) -> bytes:
    return tomli_w.dumps(msgspec.to_builtins(value)).encode("utf-8")


def repo_config_path(grite_dir: str) -> str:
    return os.path.join(grite_dir, "config.toml")


def load_repo_config(grite_dir: str) -> RepoConfig:
    """Return the repository config, or defaults when the file does not exist."""
    cfg = _load_toml(repo_config_path(grite_dir), RepoConfig)
    return cfg if cfg is not None else RepoConfig()


def save_repo_config(grite_dir: str, cfg: RepoConfig) -> str:
    path = repo_config_path(grite_dir)
    write_atomic(path, _dump_toml(cfg))
    return path


def actor_dir(grite_dir: str, actor_hex: str) -> str:
    return os.path.join(grite_dir, "actors", actor_hex)


def load_actor_config(directory: str) -> ActorConfig:
    """Load `<directory>/config.toml`.

    Raises:
        NotFound: the directory holds no actor config.
    """
    path = os.path.join(directory, "config.toml")
    # Deleting an actor's config loses that identity (not a default to recreate); the events
    # it signed stay in the WAL either way.
    remedy = (
        f'fix it (actor_id = "{os.path.basename(directory)}" is the one required key), or '
        f"remove {directory} and run 'grite actor init' to act as a new actor"
    )
    cfg = _load_toml(path, ActorConfig, remedy)
    if cfg is None:
        raise NotFound(
            f"actor config not found: {path}; run 'grite actor init' to create an actor",
            {"path": path},
        )
    return cfg  # type: ignore[no-any-return]


def save_actor_config(directory: str, cfg: ActorConfig) -> str:
    path = os.path.join(directory, "config.toml")
    write_atomic(path, _dump_toml(cfg))
    return path


def remove_actor(grite_dir: str, actor_hex: str) -> None:
    """Delete an actor's directory, and the repo's default_actor when it names it (used to
    take back an actor that a failed command created)."""
    shutil.rmtree(actor_dir(grite_dir, actor_hex), ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(actor_dir(grite_dir, actor_hex)))  # only when now empty
    except OSError:
        pass
    cfg = load_repo_config(grite_dir)
    if cfg.default_actor == actor_hex:
        cfg.default_actor = None
        if cfg == RepoConfig():
            try:
                os.unlink(repo_config_path(grite_dir))
            except FileNotFoundError:
                pass
        else:
            save_repo_config(grite_dir, cfg)


def list_actor_ids(grite_dir: str) -> list[str]:
    """Actor ids with a readable config under `actors/`, sorted; broken ones are skipped."""
    root = os.path.join(grite_dir, "actors")
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        try:
            cfg = load_actor_config(os.path.join(root, name))
        except (NotFound, Environment):
            continue
        found.append(cfg.actor_id)
    return sorted(found)


def user_config_files() -> list[str]:
    """The user config files that exist, the most important first.

    `$XDG_CONFIG_HOME/grite/config.toml` (default ~/.config/grite/config.toml), then
    `grite/config.toml` in each directory of `$XDG_CONFIG_DIRS` (default /etc/xdg), where a
    distribution or an administrator puts defaults for every user.

    Returns:
        Absolute paths of the files that exist, in search order.
    """
    # Deliberately lazy: only the daemon reads user configs, once, at start. pyxdg reads the
    # environment when it is first imported, which in a fresh daemon process is what we want.
    from xdg import BaseDirectory

    found = []
    for directory in BaseDirectory.load_config_paths("grite"):
        path = os.path.join(directory, "config.toml")
        if os.path.isfile(path):
            found.append(path)
    return found


def load_user_config(path: str) -> UserConfig:
    """One user config file (see user_config_files), or defaults when it does not exist.

    Raises:
        Environment: the file is not valid TOML or holds an invalid value.
    """
    cfg = _load_toml(path, UserConfig)
    return cfg if cfg is not None else UserConfig()


def merge_user_configs(configs: list[UserConfig]) -> UserConfig:
    """One config from several, the first in the list winning each key it sets."""
    merged = UserConfig()
    for cfg in configs:
        merged = _fill_unset(merged, cfg)
    return merged


def _fill_unset(top: _S, bottom: _S) -> _S:
    """`top` with its unset (None) keys taken from `bottom`; tables are merged the same way."""
    changes: dict[str, Any] = {}
    for name in top.__struct_fields__:
        mine, theirs = getattr(top, name), getattr(bottom, name)
        if mine is None:
            changes[name] = theirs
        elif isinstance(mine, msgspec.Struct) and isinstance(theirs, msgspec.Struct):
            changes[name] = _fill_unset(mine, theirs)
    return msgspec.structs.replace(top, **changes)


class FileCache:
    """Parsed files by path, each with the stat it was parsed at."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[_Stamp, Any]] = {}

    def load(self, path: str, parse: Callable[[], T]) -> T:
        """`parse()`'s value for `path`, parsed again only if the file changed (or appeared,
        or went away: a missing file is a state too). Errors of `parse` are not kept."""
        try:
            st = os.stat(path)
            stamp: _Stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        except OSError:
            return parse()  # let the parser report what is wrong with it
        with self._lock:
            kept = self._entries.get(path)
        if kept is not None and kept[0] == stamp:
            return kept[1]  # type: ignore[no-any-return]
        value = parse()
        with self._lock:
            self._entries[path] = (stamp, value)
        return value
