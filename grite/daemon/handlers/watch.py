"""The `Watch` handler: streams Notification frames from the hub until the client hangs up.

A watch subscribes to its repository in the notification hub (hub.py), replays what came after
`since` when asked, confirms with Subscribed, then forwards every notification until the
client sends anything (or closes) or the daemon stops; the final frame is an Ack.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from grite.daemon.handlers.commands import discover
from grite.daemon.session import Refusal, send
from grite.ipc import protocol
from grite.model import notifications
from grite.model.errors import GriteError

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from grite.daemon.hub import Hub
    from grite.daemon.service import Service
    from grite.daemon.session import Call

__all__ = ["Watches"]


def _frame(note: notifications.Notification, repo_root: str) -> protocol.Notification:
    tag = type(note).__struct_config__.tag
    return protocol.Notification(
        kind=str(tag), repo_root=repo_root, body=notifications.encode(note)
    )


class Watches:
    """`cmd_watch`, over the hub (subscriptions and replay run in the worker pool)."""

    def __init__(self, service: Service, hub: Hub, pool: ThreadPoolExecutor) -> None:
        self._service = service
        self._hub = hub
        self._pool = pool

    async def cmd_watch(self, request: protocol.Request, call: Call) -> protocol.ResultData:
        body, conn = request.body, call.conn
        assert isinstance(body, protocol.Watch) and conn.reader is not None
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[notifications.Notification] = asyncio.Queue()

        def deliver(note: notifications.Notification) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, note)

        try:
            paths = await loop.run_in_executor(self._pool, discover, body.cwd)
            sub = await loop.run_in_executor(
                self._pool, self._hub.subscribe, str(paths.git_dir), deliver
            )
        except GriteError as err:
            raise Refusal(err.code, err.message) from err
        root = str(paths.repo_root)
        waiters: list[asyncio.Future[Any]] = []
        try:
            if body.since:
                try:
                    replay = await loop.run_in_executor(
                        self._pool, self._hub.replay, sub, body.since
                    )
                except GriteError as err:
                    raise Refusal(err.code, err.message) from err
                for note in replay:
                    await send(conn.writer, _frame(note, root))
            await send(conn.writer, _frame(notifications.Subscribed(wal_head=sub.start), root))
            # The client sends nothing more on a watch: any byte or EOF from it ends the stream.
            hangup = asyncio.ensure_future(conn.reader.read(1))
            stopping = asyncio.ensure_future(self._service.until_stop_requested())
            waiters += [hangup, stopping]
            while True:
                get = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {get, hangup, stopping}, return_when=asyncio.FIRST_COMPLETED
                )
                if get not in done:
                    get.cancel()
                    break
                await send(conn.writer, _frame(get.result(), root))
        finally:
            for waiter in waiters:
                waiter.cancel()
            await loop.run_in_executor(self._pool, self._hub.unsubscribe, sub)
        return protocol.Ack()
