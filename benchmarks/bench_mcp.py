"""Benchmarks for `grite mcp` and `grite prime` (issue 13), against baselines run in the same
command, with real processes and a real daemon.

    python3 benchmarks/bench_mcp.py [--starts 10] [--calls 200] [--issues 1000]

In a private runtime dir (its own daemon, stopped at the end), on a fresh repository holding
`--issues` issues:
- MCP startup: spawn `grite mcp`, initialize, list the tools, close (median of `--starts`),
  against one `grite issue ready` CLI process (daemon warm), the cost of a shell-out;
- per call: the `ready` tool over one MCP session (median of `--calls`), against the same
  operation on one grite.Client (the MCP server's own transport) and a CLI process;
- `grite prime` as a CLI process against `grite issue ready`.
Asserts that the server ran through the daemon. Prints a Markdown table (wall clock).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grite  # noqa: E402

GRITE = [sys.executable, "-m", "grite"]


def _env(base: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRITE_", "XDG_"))}
    env.update(
        XDG_RUNTIME_DIR=base,
        HOME=os.path.join(base, "home"),
        XDG_STATE_HOME=os.path.join(base, "state"),
        XDG_CONFIG_HOME=os.path.join(base, "config"),
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
    )
    os.makedirs(env["HOME"], exist_ok=True)
    return env


def _cli_ms(repo: Path, env: dict[str, str], args: list[str], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        proc = subprocess.run([*GRITE, *args], cwd=repo, env=env, capture_output=True)
        times.append(time.perf_counter() - t0)
        assert proc.returncode == 0, proc.stderr
    return statistics.median(times) * 1000


async def _mcp(repo: Path, env: dict[str, str], starts: int, calls: int) -> tuple[float, float]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "grite", "mcp"], cwd=str(repo), env=env
    )
    start_times = []
    call_times: list[float] = []
    with open(os.devnull, "w") as errlog:
        for i in range(starts):
            t0 = time.perf_counter()
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    await session.list_tools()
                    start_times.append(time.perf_counter() - t0)
                    if i == 0:
                        for _ in range(calls):
                            t1 = time.perf_counter()
                            res = await session.call_tool("ready", {})
                            call_times.append(time.perf_counter() - t1)
                            assert not res.is_error
    return statistics.median(start_times) * 1000, statistics.median(call_times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--issues", type=int, default=1000)
    opts = parser.parse_args()
    base = tempfile.mkdtemp(prefix="gm", dir="/tmp")
    env = _env(base)
    repo = Path(base) / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    try:
        with grite.Client(str(repo), environ=env) as g:
            lines = "".join(
                f'{{"type": "issue_create", "title": "issue {i}"}}\n' for i in range(opts.issues)
            )
            subprocess.run([*GRITE, "batch"], cwd=repo, env=env, input=lines, text=True,
                           capture_output=True, check=True)  # fmt: skip
            assert g.via_daemon, "no daemon: the benchmark needs one"
            times = []
            for _ in range(opts.calls):
                t0 = time.perf_counter()
                g.issue_ready()
                times.append(time.perf_counter() - t0)
            client_ms = statistics.median(times) * 1000
        cli_ready = _cli_ms(repo, env, ["issue", "ready", "--json"], opts.starts)
        cli_prime = _cli_ms(repo, env, ["prime", "--no-record"], opts.starts)
        start_ms, call_ms = anyio.run(_mcp, repo, env, opts.starts, opts.calls)
        rows = [
            (f"`grite issue ready` CLI process, median of {opts.starts}", f"{cli_ready:.0f} ms (1.0x)"),
            (f"`grite prime` CLI process, median of {opts.starts}", f"{cli_prime:.0f} ms ({cli_prime / cli_ready:.2f}x ready)"),
            (f"`grite mcp` start + initialize + list tools, median of {opts.starts}", f"{start_ms:.0f} ms ({start_ms / cli_ready:.2f}x ready CLI)"),
            (f"`ready` on one grite.Client, median of {opts.calls}", f"{client_ms:.2f} ms (1.0x)"),
            (f"`ready` MCP tool call, median of {opts.calls}", f"{call_ms:.2f} ms ({call_ms / client_ms:.2f}x Client, {call_ms / cli_ready:.3f}x CLI)"),
        ]  # fmt: skip
    finally:
        subprocess.run([*GRITE, "daemon", "stop"], env=env, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
    print(f"grite MCP benchmarks — {opts.issues} issues, {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs\n")  # fmt: skip
    print("| measurement | result |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
