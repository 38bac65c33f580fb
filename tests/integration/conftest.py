"""Fixtures for integration tests: short private runtime dirs and an in-process Supervisor.

Unix socket paths are limited to ~107 bytes, so runtime dirs live directly under /tmp rather
than under pytest's long tmp_path. Every test gets its own dir; nothing touches the real user's
runtime dir.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from grite.daemon.handlers import Executor, Executors
from grite.daemon.registry import Registry
from grite.daemon.service import ServiceConfig
from grite.daemon.supervisor import Supervisor
from grite.ipc.paths import RuntimePaths, runtime_paths


@pytest.fixture
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimePaths]:
    """Paths of a private runtime dir for this test (socket under /tmp/gXXXX/grite/)."""
    base = tempfile.mkdtemp(prefix="g", dir="/tmp")
    try:
        yield runtime_paths({"XDG_RUNTIME_DIR": base, "HOME": base, "XDG_STATE_HOME": base})
    finally:
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class RunningSupervisor:
    supervisor: Supervisor
    paths: RuntimePaths
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    stop: asyncio.Event
    errors: list[BaseException] = field(default_factory=list)

    def shutdown(self, timeout: float = 10.0) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stop.set)
            self.thread.join(timeout)
        assert not self.thread.is_alive(), "supervisor did not stop"


@pytest.fixture
def start_supervisor(
    runtime: RuntimePaths,
) -> Iterator[Callable[..., RunningSupervisor]]:
    """Start a self-binding Supervisor in a background thread; stopped at teardown."""
    started: list[RunningSupervisor] = []

    def start(
        executor: Executor,
        *,
        idle_timeout: float = 0,
        registry: Registry | None = None,
        **kw: object,
    ) -> RunningSupervisor:
        ready = threading.Event()
        holder: dict[str, RunningSupervisor] = {}

        def main() -> None:
            async def amain() -> None:
                stop = asyncio.Event()
                config = ServiceConfig(
                    socket_path=runtime.socket,
                    idle_timeout=idle_timeout,
                    **kw,  # type: ignore[arg-type]
                )
                sup = Supervisor(
                    config,
                    executors=Executors(argv=executor),
                    registry=registry,
                    on_ready=ready.set,
                )
                holder["r"] = RunningSupervisor(
                    sup, runtime, asyncio.get_running_loop(), thread, stop
                )
                await sup.run(stop.wait())

            try:
                asyncio.run(amain())
            except BaseException as exc:  # surfaced by the test through .errors
                if "r" in holder:
                    holder["r"].errors.append(exc)
                raise
            finally:
                ready.set()

        thread = threading.Thread(target=main, daemon=True)
        thread.start()
        assert ready.wait(10), "supervisor did not become ready"
        running = holder["r"]
        started.append(running)
        return running

    yield start
    for running in started:
        running.shutdown()
