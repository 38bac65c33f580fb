"""Forging WAL commits for tests of the trust boundary: what a hostile clone could push.

grite's own writer refuses to write anything readers would refuse, so hostile commits are built
here from dulwich objects, byte by byte: any chunk, any meta.json, any parents, any commit time,
any tree shape. Each helper writes loose objects into a real repository and returns the commit
id; moving a ref is a separate, explicit step (`set_ref`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import cbor2
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from grite.model.chunk import chunk_hash, encode_chunk
from grite.model.events import Event

HEADER = b"GRITECNK\x01\x00\x07cbor-v1"
ACTOR_HEX = "0f" * 16
_FILE = 0o100644
_DIR = 0o040000
_UNSET: object = object()


def chunk_of_records(records: object) -> bytes:
    """A chunk file whose CBOR body is exactly `records` (no checks at all)."""
    return HEADER + cbor2.dumps(records)


def record_of(event: Event) -> list[object]:
    """The 8-field chunk record of an event, as grite writes it (to be altered by a test)."""
    return [
        event.event_id,
        event.issue_id,
        event.actor,
        event.ts_unix_ms,
        event.parent,
        event.kind.TAG,
        event.kind.payload(),
        event.sig,
    ]


def forge_commit(
    repo: Path | str,
    *,
    events: Sequence[Event] | None = None,
    chunk: bytes | None = None,
    parents: Sequence[str] | None | object = _UNSET,
    meta: dict[str, object] | bytes | None = None,
    meta_changes: dict[str, object] | None = None,
    commit_time: int | None = None,
    chunk_name: str | None = None,
    extra_tree: Tree | None = None,
) -> str:
    """Write one WAL-shaped commit and return its id (no ref moves).

    Args:
        repo: the working tree or git dir.
        events / chunk: the chunk, from events (grite's encoding) or as raw bytes.
        parents: git parents (default: the current refs/grite/wal, if any).
        meta: meta.json as a dict (dumped pretty like grite does) or raw bytes; default: the
            correct one for this chunk and parent.
        meta_changes: fields to override in the default meta.json.
        commit_time: committer time in seconds (default: now).
        chunk_name: the chunk's file name (default: `<blake2b>.bin`).
        extra_tree: replaces the whole `events` tree (for shape attacks).
    """
    git = _git_dir(repo)
    with Repo(git) as r:
        if parents is _UNSET:
            try:
                parents = [r.refs[b"refs/grite/wal"].decode()]
            except KeyError:
                parents = []
        parent_list = list(parents or [])  # type: ignore[call-overload]
        data = chunk if chunk is not None else encode_chunk(list(events or []))
        digest = chunk_hash(data)
        blob = Blob.from_string(data)
        objects: list[Blob | Tree | Commit] = [blob]
        if extra_tree is None:
            first_ts = events[0].ts_unix_ms if events else 1_700_000_000_000
            day = datetime.fromtimestamp(min(first_ts, 253_402_300_799_999) / 1000, timezone.utc)
            events_tree = _nest(
                [f"{day.year:04d}", f"{day.month:02d}", f"{day.day:02d}"],
                (chunk_name or f"{digest}.bin").encode(),
                blob,
                objects,
            )
        else:
            events_tree = extra_tree
        if isinstance(meta, bytes):
            meta_bytes = meta
        else:
            body: dict[str, object] = meta if meta is not None else {
                "schema_version": 1,
                "actor_id": ACTOR_HEX,
                "chunk_hash": digest,
                "prev_wal": parent_list[0] if parent_list else None,
            }  # fmt: skip
            body = {**body, **(meta_changes or {})}
            meta_bytes = json.dumps(body, indent=2).encode()
        meta_blob = Blob.from_string(meta_bytes)
        root = Tree()
        root.add(b"events", _DIR, events_tree.id)
        root.add(b"meta.json", _FILE, meta_blob.id)
        commit = Commit()
        commit.tree = root.id
        commit.parents = [p.encode() for p in parent_list]
        commit.author = commit.committer = b"mallory <mallory@example.com>"
        commit.author_time = commit.commit_time = (
            int(time.time()) if commit_time is None else commit_time
        )
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = b"WAL: forged\n"
        for obj in (*objects, events_tree, meta_blob, root, commit):
            r.object_store.add_object(obj)
        return commit.id.decode()


def _nest(dirs: list[str], leaf: bytes, blob: Blob, objects: list[Blob | Tree | Commit]) -> Tree:
    tree = Tree()
    tree.add(leaf, _FILE, blob.id)
    for name in reversed(dirs):
        objects.append(tree)
        outer = Tree()
        outer.add(name.encode(), _DIR, tree.id)
        tree = outer
    return tree


def set_ref(repo: Path | str, oid: str, ref: str = "refs/grite/wal") -> None:
    with Repo(_git_dir(repo)) as r:
        r.refs[ref.encode()] = oid.encode()


def _git_dir(repo: Path | str) -> str:
    path = Path(repo)
    return str(path / ".git") if (path / ".git").exists() else str(path)
