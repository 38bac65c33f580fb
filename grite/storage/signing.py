"""Ed25519 event signatures, as grite 0.5.3 makes them, and the `verify_signatures` policy
(https://github.com/neul-labs/grite/blob/main/crates/libgrite-core/src/signing.rs).

An actor's key is the hex of its 32-byte seed in `actors/<id>/signing_key` (mode 0600); its
public key is `public_key` (hex) with `key_scheme = "ed25519"` in the actor's config. A
signature is Ed25519 over the raw 32-byte event_id (the id already commits to every other
field), stored in the event's `sig`. Ed25519 is deterministic, so a retried write produces the
same signature and the same chunk.

Public keys are looked up among the actor configs of this repository (`actors/<id>/
config.toml`); an actor from another clone is known once its config (with `public_key`) is
copied there.

`EntryVerifier.check(entries)` is the hook grite.ops.repo_handle calls before events enter the
view; `verify_event(event, lookup)` is the single-event check sync uses. Only storage imports
`cryptography`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from grite.model.errors import CorruptData, Environment
from grite.model.events import (
    ContextUpdated,
    DependencyAdded,
    DependencyRemoved,
    Event,
    ProjectContextUpdated,
)
from grite.storage.config import (
    FileCache,
    RepoConfig,
    accepted_unsigned_actors,
    actor_dir,
    effective_verify_policy,
    list_actor_ids,
    load_actor_config,
    load_repo_config,
    repo_config_path,
    write_atomic,
)

__all__ = [
    "KEY_SCHEME",
    "SIGNING_KEY_FILE",
    "EntryVerifier",
    "PublicKeyLookup",
    "generate_seed",
    "load_signing_seed",
    "public_key_hex",
    "repo_public_keys",
    "save_signing_seed",
    "sign_event_id",
    "signature_problem",
    "verify_event",
]

# The kinds grite 0.5.3 never signs, whichever path writes them: `issue dep` and `context`
# (https://github.com/neul-labs/grite, crates/grite/src/commands/dep.rs and context.rs build
# their events without the signing key).
UNSIGNED_IN_0_5_3 = (DependencyAdded, DependencyRemoved, ContextUpdated, ProjectContextUpdated)

KEY_SCHEME = "ed25519"
SIGNING_KEY_FILE = "signing_key"

PublicKeyLookup = Callable[[bytes], "bytes | None"]


def generate_seed() -> bytes:
    """32 random bytes: a new Ed25519 private key seed."""
    return os.urandom(32)


def public_key_hex(seed: bytes) -> str:
    key = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def save_signing_seed(directory: str, seed: bytes) -> str:
    path = os.path.join(directory, SIGNING_KEY_FILE)
    write_atomic(path, seed.hex().encode("ascii"), mode=0o600)
    return path


def load_signing_seed(directory: str) -> bytes | None:
    """The actor's seed, or None when it has no key.

    Raises:
        Environment: the key file exists but is not 64 hex characters.
    """
    path = os.path.join(directory, SIGNING_KEY_FILE)
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise Environment(f"cannot read signing key {path}: {exc}", {"path": path}) from exc
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        seed = b""
    if len(seed) != 32:
        raise Environment(
            f"signing key {path} is not 64 hex characters; restore it from a backup or "
            "create a new actor with 'grite actor init --generate-key'",
            {"path": path},
        )
    return seed


def sign_event_id(seed: bytes, event_id: bytes) -> bytes:
    """The 64-byte Ed25519 signature of `event_id`."""
    return Ed25519PrivateKey.from_private_bytes(seed).sign(event_id)


def verify_event(event: Event, lookup: PublicKeyLookup) -> str | None:
    """Check one event's signature.

    Args:
        lookup: actor id -> 32-byte public key, or None when the actor's key is unknown.

    Returns:
        None when valid, else the problem: "signature missing", "public key not found",
        "invalid signature", or a parse error text.
    """
    if event.sig is None:
        return "signature missing"
    key = lookup(event.actor)
    if key is None:
        return "public key not found"
    if len(key) != 32:
        return f"key parse error: public key must be 32 bytes, got {len(key)}"
    if len(event.sig) != 64:
        return f"signature parse error: Signature must be 64 bytes, got {len(event.sig)}"
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(event.sig, event.event_id)
    except InvalidSignature:
        return "invalid signature"
    return None


def signature_problem(
    event: Event, lookup: PublicKeyLookup, unsigned_ok_from: frozenset[bytes]
) -> str | None:
    """`verify_event`, except that an unsigned event of a kind 0.5.3 never signs passes when
    its actor is listed in `accept_unsigned_from` (a signature, when present, must be valid)."""
    if (
        event.sig is None
        and event.actor in unsigned_ok_from
        and isinstance(event.kind, UNSIGNED_IN_0_5_3)
    ):
        return None
    return verify_event(event, lookup)


def repo_public_keys(grite_dir: str) -> dict[bytes, bytes]:
    """Public keys of the actors configured in this repository, by actor id."""
    keys: dict[bytes, bytes] = {}
    for actor_hex in list_actor_ids(grite_dir):
        cfg = load_actor_config(actor_dir(grite_dir, actor_hex))
        if cfg.public_key and (cfg.key_scheme or KEY_SCHEME) == KEY_SCHEME:
            try:
                keys[bytes.fromhex(actor_hex)] = bytes.fromhex(cfg.public_key)
            except ValueError:
                continue
    return keys


class _Entry(Protocol):
    """What the verifier needs of a WAL entry (grite.storage.wal.WalEntry fits)."""

    @property
    def commit(self) -> str: ...

    @property
    def events(self) -> list[Event]: ...


_EntryT = TypeVar("_EntryT", bound=_Entry)


class EntryVerifier:
    """Applies `verify_signatures` to WAL entries before they reach the view."""

    def __init__(self, grite_dir: str, files: FileCache | None = None) -> None:
        self._grite_dir = grite_dir
        self._files = files  # parsed config kept between checks (a warm handle's)

    def _config(self) -> RepoConfig:
        if self._files is None:
            return load_repo_config(self._grite_dir)
        path = repo_config_path(self._grite_dir)
        return self._files.load(path, lambda: load_repo_config(self._grite_dir))

    def policy(self) -> str:
        return effective_verify_policy(self._config())[0]

    def split(self, entries: list[_EntryT]) -> tuple[list[_EntryT], list[CorruptData]]:
        """Under policy `require`, set aside every entry holding an unsigned or badly signed
        event: (entries to use, one error per refused entry, naming its commit). Other
        policies keep everything."""
        if not entries:
            return entries, []
        cfg = self._config()
        if effective_verify_policy(cfg)[0] != "require":
            return entries, []
        keys = repo_public_keys(self._grite_dir)
        unsigned_ok = accepted_unsigned_actors(cfg)
        kept: list[_EntryT] = []
        refused: list[CorruptData] = []
        for entry in entries:
            problem = _entry_problem(entry, keys, unsigned_ok)
            if problem is None:
                kept.append(entry)
            else:
                refused.append(problem)
        return kept, refused

    def check(self, entries: Iterable[_Entry]) -> None:
        """Refuse entries with unsigned or badly signed events under policy `require`.

        Raises:
            CorruptData: policy `require` and an event fails, naming its commit.
        """
        _kept, refused = self.split(list(entries))
        if refused:
            raise refused[0]


def _entry_problem(
    entry: _Entry, keys: dict[bytes, bytes], unsigned_ok: frozenset[bytes]
) -> CorruptData | None:
    """The first event of `entry` failing its signature check, as an error naming the commit."""
    for event in entry.events:
        problem = signature_problem(event, keys.get, unsigned_ok)
        if problem is not None:
            return CorruptData(
                f"WAL commit {entry.commit}: event {event.event_id.hex()} by actor "
                f"{event.actor.hex()}: {problem}, and verify_signatures = require; "
                "add the actor's public key under .git/grite/actors/ (then 'grite rebuild'), "
                "list a grite 0.5.3 actor's id in accept_unsigned_from (its dependency and "
                "context events are never signed), or change verify_signatures in "
                ".git/grite/config.toml",
                {
                    "commit": entry.commit,
                    "event_id": event.event_id.hex(),
                    "actor": event.actor.hex(),
                    "problem": problem,
                },
            )
    return None
