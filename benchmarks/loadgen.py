"""A light load generator for the daemon: one process, many connections, pipelined requests.

    python3 benchmarks/loadgen.py SOCKET BUILD_ID --op '{"type": "issue_show", "issue": "ab12"}'
        --cwd REPO [--connections 50] [--depth 4] [--seconds 3] [--unique-ids] [--echo]

Speaks the wire protocol directly (msgspec, grite.ipc.protocol): hello with the daemon's build
id, then Op requests, each connection keeping `--depth` requests in flight. It is asyncio in
one process on purpose: 50 Python interpreters would measure the interpreters fighting over
the cores, not the daemon. Every reply is checked: a Result carrying an OpResult without an
error counts as served, anything else is counted and reported as a failure (the benchmark
flags a run with failures). `--unique-ids` gives every request its own request id (writes:
each is a new event); otherwise reads reuse one id per connection. Prints one JSON object:
{"requests": n, "seconds": s, "per_second": r, "failures": f, "first_failure": "..."}.

Also usable as a module: `run(...)` returns the same dict, and `echo_server(path)` serves a
fixed reply to every frame (the baseline: what asyncio and the socket cost without grite).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec  # noqa: E402

from grite.ipc import protocol  # noqa: E402

_HEADER = 4


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    size = int.from_bytes(await reader.readexactly(_HEADER), "big")
    return await reader.readexactly(size)


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(_HEADER, "big") + payload


def _request(op: bytes, cwd: str, rid: bytes) -> bytes:
    body = protocol.Op(args=msgspec.Raw(op), cwd=cwd, now_ms=time.time_ns() // 1_000_000)
    return _frame(protocol.encode(protocol.Request(request_id=rid, body=body)))


class _Stats:
    def __init__(self) -> None:
        self.done = 0
        self.failures = 0
        self.first_failure = ""

    def check(self, data: bytes) -> None:
        try:
            reply = protocol.decode_response(data)
        except msgspec.DecodeError as exc:
            self._fail(f"undecodable reply: {exc}")
            return
        if (
            (
                isinstance(reply, protocol.Result)
                and isinstance(reply.data, protocol.OpResult)
                and reply.data.error is None
            )
            or isinstance(reply, protocol.Result)
            and isinstance(reply.data, protocol.Ack)
        ):
            self.done += 1
        else:
            self._fail(repr(reply)[:300])

    def _fail(self, why: str) -> None:
        self.failures += 1
        if not self.first_failure:
            self.first_failure = why


async def _connection(
    path: str,
    build_id: str,
    op: bytes,
    cwd: str,
    depth: int,
    deadline: float,
    limit: int | None,
    unique: bool,
    stats: _Stats,
) -> None:
    reader, writer = await asyncio.open_unix_connection(path)
    hello = protocol.Hello(
        protocol_version=protocol.PROTOCOL_VERSION, build_id=build_id, pid=os.getpid()
    )
    writer.write(_frame(protocol.encode(hello)))
    await _read_frame(reader)
    fixed = _request(op, cwd, os.urandom(16))
    sent = 0

    def next_request() -> bytes:
        return _request(op, cwd, os.urandom(16)) if unique else fixed

    in_flight = 0
    while in_flight < depth and (limit is None or sent < limit):
        writer.write(next_request())
        sent += 1
        in_flight += 1
    while in_flight:
        stats.check(await _read_frame(reader))
        in_flight -= 1
        if time.monotonic() < deadline and (limit is None or sent < limit):
            writer.write(next_request())
            sent += 1
            in_flight += 1
    writer.close()


async def _run(
    path: str,
    build_id: str,
    op: bytes,
    cwd: str,
    *,
    connections: int,
    depth: int,
    seconds: float,
    requests: int | None,
    unique: bool,
) -> dict[str, Any]:
    stats = _Stats()
    per_conn = None if requests is None else max(1, requests // connections)
    start = time.monotonic()
    deadline = start + (seconds if requests is None else 3600)
    await asyncio.gather(
        *(
            _connection(path, build_id, op, cwd, depth, deadline, per_conn, unique, stats)
            for _ in range(connections)
        )
    )
    elapsed = time.monotonic() - start
    return {
        "requests": stats.done,
        "seconds": elapsed,
        "per_second": stats.done / elapsed if elapsed else 0.0,
        "failures": stats.failures,
        "first_failure": stats.first_failure,
    }


def run(
    path: str,
    build_id: str,
    op: dict[str, Any],
    cwd: str,
    *,
    connections: int = 1,
    depth: int = 1,
    seconds: float = 3.0,
    requests: int | None = None,
    unique: bool = False,
) -> dict[str, Any]:
    """Drive the daemon at `path`; returns the counts (see the module docstring)."""
    return asyncio.run(
        _run(
            path,
            build_id,
            msgspec.msgpack.encode(op),
            cwd,
            connections=connections,
            depth=depth,
            seconds=seconds,
            requests=requests,
            unique=unique,
        )
    )


async def _echo(path: str, ready: asyncio.Event, stop: asyncio.Event) -> None:
    hello = _frame(
        protocol.encode(
            protocol.Hello(protocol_version=protocol.PROTOCOL_VERSION, build_id="echo", pid=0)
        )
    )

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _read_frame(reader)
            writer.write(hello)
            while True:
                data = await _read_frame(reader)
                request = protocol.decode_request(data)
                reply = protocol.Result(request_id=request.request_id, data=protocol.Ack())
                writer.write(_frame(protocol.encode(reply)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(serve, path)
    ready.set()
    async with server:
        await stop.wait()


def echo_server(path: str) -> None:
    """Serve an Ack to every request on `path` until killed (the throughput baseline)."""
    asyncio.run(_echo(path, asyncio.Event(), asyncio.Event()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("socket")
    parser.add_argument("build_id", nargs="?", default="")
    parser.add_argument("--op", default='{"type": "issue_list"}')
    parser.add_argument("--cwd", default=os.getcwd())
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--requests", type=int)
    parser.add_argument("--unique-ids", action="store_true")
    parser.add_argument("--echo", action="store_true", help="serve the echo baseline instead")
    args = parser.parse_args()
    if args.echo:
        echo_server(args.socket)
        return
    result = run(
        args.socket,
        args.build_id,
        json.loads(args.op),
        args.cwd,
        connections=args.connections,
        depth=args.depth,
        seconds=args.seconds,
        requests=args.requests,
        unique=args.unique_ids,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
