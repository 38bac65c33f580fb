"""Control handlers: `daemon status`, `daemon stop`, `Retire` and `Ping`.

They answer from the daemon's own state and never run anything for the client, so a client of
another build or in another mount namespace may send them (session.py lets only these through).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from grite.daemon.service import StopReason
from grite.ipc import protocol

if TYPE_CHECKING:
    from grite.daemon.service import Service
    from grite.daemon.session import Call

__all__ = ["Control"]


class Control:
    """`cmd_daemon_status`, `cmd_daemon_stop`, `cmd_retire` and `cmd_ping`."""

    def __init__(self, service: Service) -> None:
        self._service = service

    async def cmd_daemon_status(self, request: protocol.Request, call: Call) -> protocol.ResultData:
        return self._service.status()

    async def cmd_daemon_stop(self, request: protocol.Request, call: Call) -> protocol.ResultData:
        asyncio.get_running_loop().call_soon(self._service.request_stop, StopReason.STOP)
        return protocol.Ack()

    async def cmd_retire(self, request: protocol.Request, call: Call) -> protocol.ResultData:
        asyncio.get_running_loop().call_soon(self._service.request_stop, StopReason.RETIRE)
        return protocol.Ack()

    async def cmd_ping(self, request: protocol.Request, call: Call) -> protocol.ResultData:
        return protocol.Ack()
