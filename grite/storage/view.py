"""The materialized view: issue projections in a diskcache Cache under `.git/grite/view/`.

The view is a cache of the WAL and can always be deleted and rebuilt. It records the WAL head it
reflects (`meta`); a reader that finds the ref ahead applies only the newer commits. Keys:

    meta          ViewMeta
    pj:<hex>      IssueProjection of one issue (also issues whose IssueCreated has not arrived)
    sm:<xx>       summaries of the created issues whose id starts with byte <xx>: 256 buckets, so
                  `issue list` reads 256 values instead of one per issue, while a write rewrites
                  only the bucket of the issue it touched
    cf:<path>     FileContext: the newest ContextUpdated of one path (`grite context show`)
    cy:<hex>      symbol index bucket: {symbol name: [paths]} for the names whose first
                  character has code point <hex> (`grite context query` reads one bucket)
    cy            the bucket ids that exist, sorted (an empty query reads them all)
    cp            {key: ProjectEntry}: project context (`grite context project`)

Only the process holding `view.lock` writes (see grite.ops.repo_handle); diskcache's SQLite
transactions make each catch-up batch atomic, so a crash leaves the old head and old data.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterable
from typing import Any

import diskcache
import msgspec

from grite.model.context import ContextChanges, FileContext, ProjectEntry
from grite.model.errors import Environment
from grite.model.projection import IssueProjection, IssueSummary
from grite.storage.unwritable import REMEDY, read_only_reason, write_failure

__all__ = ["VIEW_FORMAT", "View", "ViewDamaged", "ViewMeta", "symbol_key_order"]

# 2: adds the context store (cf:, cy:, cp); a view of format 1 is rebuilt from the WAL.
VIEW_FORMAT = 2


# No eviction (the view must hold every issue). Values up to 1 MiB stay in SQLite: diskcache
# puts larger ones (default 32 KiB) in files of their own, and replacing such a file on every
# change of a busy issue cost more than the rest of a group commit (benchmarks/RESULTS.md).
_SETTINGS: dict[str, Any] = {
    "eviction_policy": "none",
    "size_limit": 2**62,
    "cull_limit": 0,
    "disk_min_file_size": 2**20,
}


class ViewMeta(msgspec.Struct, kw_only=True):
    """`skipped` maps each WAL commit the view left out (invalid, or refused by
    verify_signatures) to the reason, so that every later command can still say so."""

    format: int = VIEW_FORMAT
    wal_head: str | None = None
    event_count: int = 0
    rebuilt_ms: int | None = None
    skipped: dict[str, str] = msgspec.field(default_factory=dict)
    # event_count when the view was last built from scratch (db stats: events since rebuild)
    rebuilt_event_count: int = 0


_meta_enc = msgspec.msgpack.Encoder()
_meta_dec = msgspec.msgpack.Decoder(ViewMeta)
_proj_dec = msgspec.msgpack.Decoder(IssueProjection)
_bucket_dec = msgspec.msgpack.Decoder(dict[bytes, IssueSummary])
_file_dec = msgspec.msgpack.Decoder(FileContext)
_symbols_dec = msgspec.msgpack.Decoder(dict[str, list[str]])
_buckets_dec = msgspec.msgpack.Decoder(list[str])
_project_dec = msgspec.msgpack.Decoder(dict[str, ProjectEntry])


class ViewDamaged(Environment):
    """The view database failed while open (e.g. overwritten under a running daemon).

    The view has already been recreated empty when this is raised: the caller drops what it
    cached about the view and reads again (the next refresh rebuilds it from the WAL).
    """


def _bucket_key(issue_id: bytes) -> str:
    return f"sm:{issue_id[0]:02x}"


def _symbol_bucket(name: str) -> str:
    return f"{ord(name[0]):x}" if name else "-"


def symbol_key_order(name: str, path: str) -> bytes:
    """The order of `context query` matches: grite 0.5.3 scans keys `ctx/sym/<name>/<path>`
    in byte order, so this sorts the same way."""
    return f"{name}/{path}".encode()


class View:
    """One repository's view on disk. Thread-safe (diskcache opens a connection per thread)."""

    def __init__(self, grite_dir: str) -> None:
        self.path = os.path.join(grite_dir, "view")
        self.lock_path = os.path.join(grite_dir, "view.lock")
        try:
            os.makedirs(grite_dir, exist_ok=True)
        except OSError as exc:
            raise write_failure(grite_dir, exc) from exc
        self._cache = self._open()

    def _open(self) -> diskcache.Cache:
        try:
            cache = diskcache.Cache(self.path, **_SETTINGS)
            # Touch the database so that a garbage file fails here, not in the middle of a query.
            cache.get("meta")
            return cache
        except (sqlite3.DatabaseError, OSError) as exc:
            return self._recreate(exc)

    def _recreate(self, exc: BaseException) -> diskcache.Cache:
        # The view is only a cache of the WAL: a damaged one is deleted and rebuilt.
        shutil.rmtree(self.path, ignore_errors=True)
        try:
            return diskcache.Cache(self.path, **_SETTINGS)
        except (sqlite3.DatabaseError, OSError) as exc2:
            reason = read_only_reason(self.path)
            if reason is not None:
                raise Environment(
                    f"cannot open the view at {self.path}: {reason}; {REMEDY}",
                    {"path": self.path},
                ) from exc2
            raise Environment(
                f"cannot create the view at {self.path} ({exc2}; earlier: {exc}); "
                "check permissions and disk space, then run 'grite doctor --fix'"
            ) from exc2

    def close(self) -> None:
        self._cache.close()

    def reset(self) -> None:
        """Drop everything (a rebuild follows)."""
        try:
            self._cache.clear()
        except sqlite3.DatabaseError as exc:
            self._damaged(exc)

    def _damaged(self, exc: sqlite3.DatabaseError) -> None:
        # OperationalError is busy, locked, disk full or I/O: not damage, the caller reports it.
        if isinstance(exc, sqlite3.OperationalError):
            raise exc
        try:
            self._cache.close()
        except sqlite3.Error:
            pass
        self._cache = self._recreate(exc)
        raise ViewDamaged(
            f"the view at {self.path} was damaged ({exc}); it was recreated and is rebuilt "
            "from the WAL (nothing is lost)"
        ) from exc

    def _get(self, key: str) -> bytes | None:
        try:
            return self._cache.get(key)  # type: ignore[no-any-return]
        except sqlite3.DatabaseError as exc:
            self._damaged(exc)
            raise  # unreachable: _damaged always raises

    def meta(self) -> ViewMeta:
        raw = self._get("meta")
        if raw is None:
            return ViewMeta()
        try:
            meta = _meta_dec.decode(raw)
        except msgspec.DecodeError:
            return ViewMeta(format=-1)
        return meta

    def projection(self, issue_id: bytes) -> IssueProjection | None:
        raw = self._get(f"pj:{issue_id.hex()}")
        return None if raw is None else _proj_dec.decode(raw)

    def summaries(self) -> dict[bytes, IssueSummary]:
        """Every created issue's summary, keyed by issue id."""
        found: dict[bytes, IssueSummary] = {}
        for byte in range(256):
            raw = self._get(f"sm:{byte:02x}")
            if raw is not None:
                found.update(_bucket_dec.decode(raw))
        return found

    def issue_ids_with_prefix(self, prefix: str) -> list[bytes]:
        """Ids of created issues whose hex starts with `prefix` (at least 2 hex chars)."""
        raw = self._get(f"sm:{prefix[:2]}")
        if raw is None:
            return []
        return sorted(i for i in _bucket_dec.decode(raw) if i.hex().startswith(prefix))

    def file_context(self, path: str) -> FileContext | None:
        raw = self._get(f"cf:{path}")
        return None if raw is None else _file_dec.decode(raw)

    def project_entries(self) -> dict[str, ProjectEntry]:
        raw = self._get("cp")
        return {} if raw is None else _project_dec.decode(raw)

    def project_entry(self, key: str) -> ProjectEntry | None:
        return self.project_entries().get(key)

    def symbol_matches(self, prefix: str) -> list[tuple[str, str]]:
        """(name, path) of every indexed symbol whose name starts with `prefix`."""
        if prefix:
            buckets = [_symbol_bucket(prefix)]
        else:
            raw = self._get("cy")
            buckets = [] if raw is None else _buckets_dec.decode(raw)
        found = []
        for bucket in buckets:
            raw = self._get(f"cy:{bucket}")
            if raw is None:
                continue
            for name, paths in _symbols_dec.decode(raw).items():
                if name.startswith(prefix):
                    found += [(name, path) for path in paths]
        return found

    def _store_context(self, context: ContextChanges) -> None:
        """Inside store()'s transaction: new file contexts replace their path's symbols in
        the index, project entries are merged."""
        enc = _meta_enc.encode
        buckets: dict[str, dict[str, list[str]]] = {}
        # (bucket, name) -> that name's paths, as a set while this batch edits it.
        edited: dict[tuple[str, str], set[str]] = {}

        def paths_of(name: str) -> set[str]:
            key = _symbol_bucket(name)
            if key not in buckets:
                raw = self._cache.get(f"cy:{key}")
                buckets[key] = {} if raw is None else _symbols_dec.decode(raw)
            found = edited.get((key, name))
            if found is None:
                found = edited[(key, name)] = set(buckets[key].get(name, ()))
            return found

        for path, fc in context.files.items():
            raw = self._cache.get(f"cf:{path}")
            old = set() if raw is None else {s.name for s in _file_dec.decode(raw).symbols}
            new = {s.name for s in fc.symbols}
            for name in old - new:
                paths_of(name).discard(path)
            for name in new - old:
                paths_of(name).add(path)
            self._cache.set(f"cf:{path}", enc(fc))
        for (key, name), paths in edited.items():
            if paths:
                order = name.encode() + b"/"
                buckets[key][name] = sorted(paths, key=lambda p: order + p.encode())
            else:
                buckets[key].pop(name, None)
        if buckets:
            raw = self._cache.get("cy")
            known = set() if raw is None else set(_buckets_dec.decode(raw))
            for key, names in buckets.items():
                if names:
                    self._cache.set(f"cy:{key}", enc(names))
                    known.add(key)
                else:
                    self._cache.delete(f"cy:{key}")
                    known.discard(key)
            self._cache.set("cy", enc(sorted(known)))
        if context.project:
            raw = self._cache.get("cp")
            entries = {} if raw is None else _project_dec.decode(raw)
            entries.update(context.project)
            self._cache.set("cp", enc(entries))

    def store(
        self,
        projections: Iterable[IssueProjection],
        summaries: dict[bytes, IssueSummary | None],
        meta: ViewMeta,
        context: ContextChanges | None = None,
    ) -> None:
        """Write changed projections and summaries, context changes and the new meta in one
        transaction.

        Args:
            summaries: new summary per issue id, None to drop it from its bucket.
            context: file contexts and project entries that won (grite.model.context).
        """
        enc = _meta_enc.encode
        by_bucket: dict[str, dict[bytes, IssueSummary | None]] = {}
        for issue_id, summary in summaries.items():
            by_bucket.setdefault(_bucket_key(issue_id), {})[issue_id] = summary
        try:
            with self._cache.transact():
                for p in projections:
                    self._cache.set(f"pj:{p.issue_id.hex()}", enc(p))
                for key, changes in by_bucket.items():
                    raw = self._cache.get(key)
                    bucket = {} if raw is None else _bucket_dec.decode(raw)
                    for issue_id, summary in changes.items():
                        if summary is None:
                            bucket.pop(issue_id, None)
                        else:
                            bucket[issue_id] = summary
                    self._cache.set(key, enc(bucket))
                if context:
                    self._store_context(context)
                self._cache.set("meta", enc(meta))
        except sqlite3.OperationalError as exc:
            raise Environment(
                f"cannot write the view at {self.path}: {exc}; check disk space "
                "(the WAL is intact; the view catches up on the next command)"
            ) from exc
        except sqlite3.DatabaseError as exc:
            self._damaged(exc)

    def size_bytes(self) -> int:
        total = 0
        for root, _dirs, files in os.walk(self.path):
            for name in files:
                try:
                    total += os.path.getsize(os.path.join(root, name))
                except OSError:
                    pass
        return total
