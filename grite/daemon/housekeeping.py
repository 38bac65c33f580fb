"""The daemon's housekeeping: idle exit, lost socket, heartbeat, upgrade check, ref poller, status.

Every `tick` seconds while running: stop when idle for the effective idle timeout (nothing
connected, accepted or in flight), or when a self-bound socket path is no longer ours; tell the
service manager the status line when it changed; every 10 ticks refresh the pid file's and the
workers' heartbeats and sweep idle workers; every 60 ticks stop when the installed grite's build
id changed (an upgrade). A separate poller looks for refs moved by other processes while
someone watches. Blocking work runs in the worker pool, never on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from grite.daemon.hub import POLL_INTERVAL
from grite.daemon.service import State, StopReason
from grite.ipc import protocol

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from grite.daemon.binding import Binding
    from grite.daemon.hub import Hub
    from grite.daemon.registry import Registry
    from grite.daemon.sd_notify import Notifier
    from grite.daemon.service import Service

__all__ = ["Housekeeping"]

_log = logging.getLogger("grite.daemon")


class Housekeeping:
    """The periodic checks of one daemon.

    Args:
        service: the accept loop (settings, state, counters, stop).
        registry: the per-repository handles (idle timeouts, heartbeat, sweep, refs in use).
        hub: the notification hub the ref poller refreshes.
        pool: the worker threads for blocking checks.
        notifier: service-manager notifications (systemd STATUS=), None without one.
    """

    def __init__(
        self,
        service: Service,
        registry: Registry,
        hub: Hub,
        pool: ThreadPoolExecutor,
        notifier: Notifier | None,
    ) -> None:
        self._service = service
        self._registry = registry
        self._hub = hub
        self._pool = pool
        self._notifier = notifier
        self._last_status = ""

    def effective_idle_timeout(self) -> float:
        """Seconds of idleness before exiting (0: never).

        Unless --idle-timeout fixed it, a repository served since start can lengthen it with
        `[daemon] idle_timeout_seconds` in its .git/grite/config.toml (0 there means never):
        one daemon serves every repository, so the most patient one wins.
        """
        config = self._service.config
        idle_timeout = config.idle_timeout or 0
        if config.idle_timeout_fixed or not idle_timeout:
            return idle_timeout
        configured = self._registry.configured_idle_timeouts()
        if 0 in configured:
            return 0
        return max([idle_timeout, *configured])

    def status_text(self) -> str:
        """One line of counts for the service manager (`systemctl --user status`)."""
        load = self._service.load
        repos = len(self._registry.repositories())
        return (
            f"{load.requests_served} requests served, {repos} "
            f"{'repository' if repos == 1 else 'repositories'} open, "
            f"{len(load.connections)} connections, {load.in_flight} in flight"
        )

    async def run(self, binding: Binding | None) -> None:
        """Check every tick until a stop is requested (`binding`: the self-bind ownership)."""
        service, load = self._service, self._service.load
        loop = asyncio.get_running_loop()
        ticks = 0
        while True:
            try:
                await asyncio.wait_for(service.until_stop_requested(), timeout=service.config.tick)
            except asyncio.TimeoutError:
                pass
            if service.state is not State.RUNNING:
                if service.stop_requested and service.state is State.DRAINING:
                    return
                continue
            ticks += 1
            now = time.monotonic()
            idle_timeout = self.effective_idle_timeout()
            if (
                idle_timeout
                and not load.connections
                and not load.accepted
                and not load.in_flight
                and now - load.last_activity >= idle_timeout
            ):
                service.request_stop(StopReason.IDLE)
                return
            if binding is not None and not binding.owns_socket():
                service.request_stop(StopReason.LOST_SOCKET)
                return
            if self._notifier is not None and (text := self.status_text()) != self._last_status:
                self._last_status = text
                self._notifier.status(text)
            if ticks % 10 == 0:
                await loop.run_in_executor(self._pool, self._heartbeat, binding)
            if ticks % 60 == 0:
                try:
                    current = await loop.run_in_executor(self._pool, protocol.compute_build_id)
                except OSError:  # files vanishing mid-upgrade or removal: look again later
                    continue
                if current != service.hello.build_id:
                    service.request_stop(StopReason.UPGRADED)
                    return

    async def poll_refs(self) -> None:
        """Notice refs moved by other processes or `git fetch`, only while someone watches."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            if self._service.state is State.RUNNING and self._hub.watched():
                try:
                    await loop.run_in_executor(self._pool, self._hub.poll, self._registry.in_use)
                except Exception:  # a poller that died would leave every watcher silent
                    _log.exception("cannot poll the watched repositories; polling on")

    def _heartbeat(self, binding: Binding | None) -> None:
        if binding is not None:
            binding.heartbeat()
        self._registry.heartbeat()
        self._registry.sweep()
