"""What every operation runs with: the open repository, the acting actor, the request's clock
and id. Built by whichever side executes (daemon or in-process) from the client's invocation.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import msgspec

from grite.ops.repo_handle import RepoHandle
from grite.storage.config import (
    ActorConfig,
    RepoConfig,
    load_actor_config,
    load_repo_config,
    repo_config_path,
)
from grite.storage.repo import RepoPaths

__all__ = ["ActorSelector", "OpContext"]


class ActorSelector(msgspec.Struct, frozen=True, kw_only=True):
    """How the user chose an actor: `--data-dir`/GRITE_HOME, `--actor`, or neither."""

    actor: str | None = None
    data_dir: str | None = None


class OpContext:
    """Per-request facts. `request_id` and `now_ms` come from the client so that a retried
    request derives the same new ids and timestamps and so the same event ids."""

    __slots__ = (
        "_actor_configs",
        "_handle",
        "_opener",
        "_repo_config",
        "now_ms",
        "paths",
        "request_id",
        "selector",
        "undo",
        "warnings",
    )

    def __init__(
        self,
        *,
        paths: RepoPaths,
        opener: object,
        selector: ActorSelector,
        request_id: bytes,
        now_ms: int,
        warnings: list[str] | None = None,
    ) -> None:
        self.paths = paths
        self._opener = opener
        self._handle: RepoHandle | None = None
        self.selector = selector
        self.request_id = request_id
        self.now_ms = now_ms
        # Lines the CLI prints to stderr as "warning: ..." (ops never print themselves).
        self.warnings: list[str] = [] if warnings is None else warnings
        # Side effects to take back when the operation fails (an actor created on the way).
        self.undo: list[Callable[[], None]] = []
        # Config files as read for this request: every check of one write (actor, signing,
        # lock policy, snapshots) sees the same config, read once (see config_changed).
        self._repo_config: RepoConfig | None = None
        self._actor_configs: dict[str, ActorConfig] = {}

    def run(self, operation: Callable[[OpContext, Any], Any], args: Any) -> Any:
        """Run `operation(self, args)`; when it fails, take back what `undo` lists first."""
        try:
            return operation(self, args)
        except BaseException:
            for action in reversed(self.undo):
                action()
            raise

    @property
    def handle(self) -> RepoHandle:
        """The repository handle, opened on first use (actor commands never need it)."""
        if self._handle is None:
            self._handle = self._opener(self.paths)  # type: ignore[operator]
        return self._handle

    def warn_once(self, text: str) -> None:
        """Add a warning line unless this command already has it."""
        if text not in self.warnings:
            self.warnings.append(text)

    def repo_config(self) -> RepoConfig:
        """The repository's config.toml (read-only), read once per request; a warm daemon's
        open repository keeps it parsed until the file changes."""
        if self._repo_config is None:
            if self._handle is None:
                self._repo_config = load_repo_config(self.paths.grite_dir)
            else:
                path = repo_config_path(self.paths.grite_dir)
                self._repo_config = self._handle.files.load(
                    path, lambda: load_repo_config(self.paths.grite_dir)
                )
        return self._repo_config

    def actor_config(self, directory: str) -> ActorConfig:
        """An actor's config.toml (read-only), read once per request like repo_config.

        Raises:
            NotFound: the directory holds no actor config.
        """
        cfg = self._actor_configs.get(directory)
        if cfg is None:
            if self._handle is None:
                cfg = load_actor_config(directory)
            else:
                path = os.path.join(directory, "config.toml")
                cfg = self._handle.files.load(path, lambda: load_actor_config(directory))
            self._actor_configs[directory] = cfg
        return cfg

    def config_changed(self) -> None:
        """Forget the config files read so far: the operation has just written one (`init`,
        `actor init`, `actor use`, the first write's new actor)."""
        self._repo_config = None
        self._actor_configs.clear()

    def derive_id(self, purpose: bytes, length: int = 16) -> bytes:
        """A new id derived from the request id, identical when the request is retried."""
        return hashlib.blake2b(self.request_id + purpose, digest_size=length).digest()
