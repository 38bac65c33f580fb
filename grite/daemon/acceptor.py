"""The listener side of the accept loop: accept in batches, back off when out of descriptors.

Our own accept (not asyncio's server) so that every accepted socket has its handler task,
counted by the idle check (service.Load) and awaited by shutdown, in the same loop step as the
accept. At most `_ACCEPT_BATCH` connections per readiness event, so one burst of clients does
not starve the ones already connected. The connection itself is served by a session
(session.py), through the `serve` callback the Supervisor gives.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from grite.daemon.service import State
from grite.daemon.session import Connection

if TYPE_CHECKING:
    import socket

    from grite.daemon.service import Service

__all__ = ["Acceptor", "ServeConnection"]

_log = logging.getLogger("grite.daemon")

# Connections accepted per readiness event before the loop serves others.
_ACCEPT_BATCH = 64

# Serves one registered connection until it ends (a Session's serve).
ServeConnection = Callable[[Connection, asyncio.StreamReader], Awaitable[None]]


class Acceptor:
    """Accepts connections on one non-blocking listener for one service.

    Args:
        service: the accept loop's state and counters (connections are registered in its Load).
        listener: the listening socket, already non-blocking.
        serve: serves one connection once its streams are set up.
    """

    def __init__(self, service: Service, listener: socket.socket, serve: ServeConnection) -> None:
        self._service = service
        self._listener = listener
        self._serve = serve

    def set_accepting(self, on: bool) -> None:
        """Start or stop watching the listener for connections."""
        loop = asyncio.get_running_loop()
        if on:
            loop.add_reader(self._listener.fileno(), self._accept_ready)
        else:
            loop.remove_reader(self._listener.fileno())

    def _may_accept(self) -> bool:
        return self._service.state is State.RUNNING and not self._service.stop_requested

    def _accept_ready(self) -> None:
        # A readiness event may already be queued when stop is requested: never accept then.
        if self._may_accept():
            self.accept_queued(_ACCEPT_BATCH)

    def _resume_accepting(self) -> None:
        if self._may_accept():
            self.set_accepting(True)

    def accept_queued(self, limit: int | None) -> None:
        """Accept up to `limit` queued connections (None: all), each registered at once."""
        loop = asyncio.get_running_loop()
        load = self._service.load
        accepted = 0
        while limit is None or accepted < limit:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # that client gave up while queued
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors: pause instead of spinning on a readable listener.
                    _log.warning("cannot accept connections (%s); retrying in 1 s", exc)
                    self.set_accepting(False)
                    loop.call_later(1.0, self._resume_accepting)
                else:
                    _log.warning("accept failed: %s", exc)
                return
            accepted += 1
            task = loop.create_task(self._on_socket(sock))
            load.accepted.add(task)
            load.touch()

    async def _on_socket(self, sock: socket.socket) -> None:
        task = asyncio.current_task()
        assert task is not None
        load = self._service.load
        try:
            reader, writer = await asyncio.open_unix_connection(sock=sock)
        except (OSError, asyncio.CancelledError):
            sock.close()
            return
        finally:
            # No suspension between here and registering the connection below.
            load.accepted.discard(task)
        conn = Connection(writer)
        load.connections[task] = conn
        load.touch()
        try:
            await self._serve(conn, reader)
        finally:
            del load.connections[task]
            load.touch()
