"""Scenario 5: hostile and broken clients against a real `grite-daemon` process.

10,000 seeded random or mutated frames (random bytes, valid requests with flipped bytes,
truncated msgpack, unknown tags, huge length headers, half frames), 500 idle connections held
at once against a daemon whose descriptor limit is lower than that (accept hits EMFILE), and a
client reading its answer one byte at a time. Throughout, a well-behaved client keeps getting
correct answers within its deadline; afterwards the daemon has the same pid, its RSS grew by
less than RSS_GROWTH_BOUND_KB, and it still exits on its own when idle.
"""

from __future__ import annotations

import json
import os
import random
import resource
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgspec

from grite.ipc import protocol, wire
from grite.model.invocation import Invocation
from tests.conftest import TypedConnection
from tests.faults.conftest import FaultEnv, init_repo, pid_alive, rss_kb, wait_for

FRAMES = 10_000
IDLE_CONNECTIONS = 500
DAEMON_NOFILE = 256  # soft limit handed to the daemon, below IDLE_CONNECTIONS: it raises it
RSS_GROWTH_BOUND_KB = 64 * 1024
GOOD_DEADLINE = 10.0


def _hello() -> bytes:
    hello = protocol.Hello(
        protocol_version=protocol.PROTOCOL_VERSION, build_id=protocol.build_id(), pid=os.getpid()
    )
    return wire.encode_frame(protocol.encode(hello))


def _valid_request(repo: Path) -> bytes:
    inv = Invocation(
        argv=["issue", "list", "--json"],
        cwd=str(repo),
        env={},
        request_id=b"r" * 16,
        now_ms=time.time_ns() // 1_000_000,
    )
    return protocol.encode(
        protocol.Request(request_id=b"r" * 16, body=protocol.RunArgv(invocation=inv))
    )


def _abusive_frame(rng: random.Random, valid: bytes) -> bytes:
    """One hostile frame (length header included, possibly lying)."""
    kind = rng.randrange(7)
    if kind == 0:  # random bytes
        return wire.encode_frame(rng.randbytes(rng.randrange(0, 300)))
    if kind == 1:  # a valid request with flipped bytes
        data = bytearray(valid)
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return wire.encode_frame(bytes(data))
    if kind == 2:  # truncated msgpack
        return wire.encode_frame(valid[: rng.randrange(1, len(valid))])
    if kind == 3:  # unknown tag, right shape
        body = {"request_id": b"x" * 16, "body": {"type": rng.choice(["nope", "", "run_argv!"])}}
        return wire.encode_frame(msgspec.msgpack.encode(body))
    if kind == 4:  # huge length header
        return struct.pack(">I", rng.choice([wire.MAX_FRAME + 1, 2**32 - 1, 2**31]))
    if kind == 5:  # half a frame, then hang up
        return struct.pack(">I", 1000) + rng.randbytes(rng.randrange(0, 500))
    return struct.pack(">I", 50)[: rng.randrange(1, 4)]  # half a header


class _GoodClient(threading.Thread):
    """Pings and lists issues in a loop; records any wrong answer or missed deadline."""

    def __init__(self, socket_path: str, repo: Path) -> None:
        super().__init__(daemon=True)
        self.socket_path = socket_path
        self.repo = repo
        self.stop = threading.Event()
        self.ok = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                with TypedConnection.open(self.socket_path, timeout=GOOD_DEADLINE) as conn:
                    inv = Invocation(
                        argv=["issue", "list", "--json"],
                        cwd=str(self.repo),
                        env={},
                        request_id=os.urandom(16),
                        now_ms=time.time_ns() // 1_000_000,
                    )
                    final = conn.request(protocol.RunArgv(invocation=inv))
                assert isinstance(final, protocol.Result), final
                assert isinstance(final.data, protocol.RunArgvResult)
                assert '"title": "known"' in final.data.outcome.stdout
                assert time.monotonic() - started < GOOD_DEADLINE
                self.ok += 1
            except Exception as exc:  # recorded, asserted by the test
                self.errors.append(
                    f"{time.monotonic() - started:.1f}s {type(exc).__name__}: {exc}"[:600]
                )
            self.stop.wait(0.05)


def _send_abuse(path: str, frames: list[tuple[bool, bytes]]) -> None:
    for with_hello, frame in frames:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(GOOD_DEADLINE)
        try:
            sock.connect(path)
            sock.sendall((_hello() if with_hello else b"") + frame)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass  # an error frame and/or EOF: the daemon decides, we only drain
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            sock.close()


def _start_daemon(
    fault_env: FaultEnv, *, idle_timeout: int, soft_nofile: int, hard_nofile: int = 4096
) -> subprocess.Popen[bytes]:
    """A real grite-daemon in its own session, started with a low open-files limit."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft_nofile, hard_nofile))

    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "grite.daemon",
            "--socket-path",
            fault_env.paths.socket,
            "--idle-timeout",
            str(idle_timeout),
            "--log-file",
            str(fault_env.base / "daemon.log"),
        ],
        env=fault_env.env,
        cwd="/",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=limit,
        start_new_session=True,
    )


def test_daemon_survives_abuse_and_keeps_serving(fault_env: FaultEnv) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < IDLE_CONNECTIONS + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    repo = init_repo(fault_env)
    fault_env.local(repo, "issue", "create", "--title", "known")
    proc = fault_env.run(
        repo,
        "--no-daemon",
        "issue",
        "create",
        "--title",
        "big",
        "--body",
        "-",
        "--json",
        input="x" * 1_000_000,  # under the 1 Mi character cap on text fields
    )
    assert proc.returncode == 0, proc.stderr
    big = json.loads(proc.stdout)["data"]

    daemon = _start_daemon(fault_env, idle_timeout=3, soft_nofile=DAEMON_NOFILE)
    wait_for(lambda: fault_env.daemon_pid() == daemon.pid, what="daemon ready")
    assert _soft_nofile(daemon.pid) == 4096, "the daemon did not raise its open-files limit"
    good = _GoodClient(fault_env.paths.socket, repo)
    good.start()
    wait_for(lambda: good.ok >= 3, what="well-behaved client served")
    rss_before = rss_kb(daemon.pid)

    # 1. 10,000 hostile frames over as many connections, from four threads.
    rng = random.Random(20261127)
    valid = _valid_request(repo)
    frames = [(rng.random() < 0.7, _abusive_frame(rng, valid)) for _ in range(FRAMES)]
    senders = [
        threading.Thread(target=_send_abuse, args=(fault_env.paths.socket, frames[i::4]))
        for i in range(4)
    ]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    assert pid_alive(daemon.pid)

    # 2. 500 idle connections at once: more than the daemon's descriptor limit.
    idle = []
    for _ in range(IDLE_CONNECTIONS):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(fault_env.paths.socket)  # the backlog accepts even when the daemon cannot
        idle.append(s)
    # 3. A client reading a 2 MB answer (the body, and again in its event) one byte at a time (its send buffer fills up).
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    slow.connect(fault_env.paths.socket)
    slow.sendall(_hello())
    inv = Invocation(
        argv=["issue", "show", big["issue_id"], "--json"],
        cwd=str(repo),
        env={},
        request_id=b"s" * 16,
        now_ms=time.time_ns() // 1_000_000,
    )
    slow.sendall(
        wire.encode_frame(
            protocol.encode(
                protocol.Request(request_id=b"s" * 16, body=protocol.RunArgv(invocation=inv))
            )
        )
    )
    for _ in range(3):
        slow.recv(1)
        time.sleep(1)  # the slow reader's pace is the fault being injected
    served_during = good.ok
    for s in idle:
        s.close()
    slow.close()
    wait_for(lambda: good.ok >= served_during + 5, timeout=30, what="served after the abuse")
    good.stop.set()
    good.join()

    assert not good.errors, good.errors[:5]
    assert fault_env.daemon_pid() == daemon.pid, "the daemon was replaced"
    rss_after = rss_kb(daemon.pid)
    print(
        f"\nprotocol-abuse: {FRAMES} frames, {IDLE_CONNECTIONS} idle connections, "
        f"{good.ok} good answers, RSS {rss_before} -> {rss_after} kB"
    )
    assert rss_after - rss_before < RSS_GROWTH_BOUND_KB
    # Idle afterwards: it exits on its own.
    assert daemon.wait(timeout=30) == 0


def _soft_nofile(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as f:
        line = next(x for x in f if x.startswith("Max open files"))
    return int(line.split()[3])


def test_daemon_survives_running_out_of_descriptors(fault_env: FaultEnv) -> None:
    """With a hard limit below the number of clients, accept() fails with EMFILE: the daemon
    must keep its pid and serve again once the connections go away."""
    repo = init_repo(fault_env)
    fault_env.local(repo, "issue", "create", "--title", "known")

    daemon = _start_daemon(fault_env, idle_timeout=0, soft_nofile=64, hard_nofile=64)
    wait_for(lambda: fault_env.daemon_pid() == daemon.pid, what="daemon ready")
    held = []
    for _ in range(150):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(fault_env.paths.socket)
        s.sendall(_hello())
        held.append(s)
    time.sleep(0.5)  # let the daemon hit EMFILE on accept (fault injection)
    assert pid_alive(daemon.pid)
    for s in held:
        s.close()
    client = _GoodClient(fault_env.paths.socket, repo)
    client.start()
    try:
        wait_for(lambda: client.ok >= 3, timeout=30, what="served after EMFILE")
    except AssertionError as exc:
        log = fault_env.daemon_log()[-3000:]
        raise AssertionError(
            f"{exc}; client errors {client.errors[-5:]}; daemon log:\n{log}"
        ) from None
    client.stop.set()
    client.join()
    assert fault_env.daemon_pid() == daemon.pid
    daemon.kill()
    daemon.wait()
