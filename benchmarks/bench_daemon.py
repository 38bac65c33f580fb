"""The daemon's benchmark (issues 3 and 11): every row a ratio to a baseline run in the same run.

    python3 benchmarks/bench_daemon.py [--tree PATH] [--issues 1000] [--write] [--title TEXT]

What is measured is installed as a user installs it: a wheel of `--tree` (default: this
checkout) built with pip and installed with the current pip into a fresh virtualenv (so the
console script is the one pip writes today, and no editable-install finder runs at start-up),
its dependencies taken from the interpreter running this script through a plain path entry.
A second virtualenv gets the same tree with one comment changed: another build, for the
"two builds" rows. Every measurement runs in private directories (TMPDIR, XDG_RUNTIME_DIR,
HOME, XDG_STATE_HOME, XDG_CONFIG_HOME) under one temporary base, removed at the end, with its
own daemons, stopped at the end.

Served by the daemon, or not: every command meant for the daemon runs with GRITE_DAEMON=require
(a fallback fails it and the row is marked FALLBACK) and GRITE_DEBUG=1 (a build without the
strict mode prints "daemon not used" when it falls back, which marks the row too); the load
generator (benchmarks/loadgen.py) speaks the protocol to the daemon directly and counts every
reply that is not a result; grite.Client rows report the Client's own `served_by`.

Rows and their baselines (the ratio is measured / baseline):
- warm `grite issue list` and `issue show` / bare `python -c pass` (median of 20, interleaved);
- daemon CPU per warm `issue show` over one persistent connection (utime+stime of the daemon
  over 3,000 requests) / the same load against an asyncio echo server on the same kind of
  socket (what asyncio and the socket cost without grite);
- `issue show`/s from one load-generator process (50 connections, 4 requests in flight each)
  / the echo server's rate under the same load;
- acknowledged writes/s from 50 concurrent writers (one connection each, one write in
  flight) / one writer;
- the first command when no daemon runs / the same command with --no-daemon (median of 5);
- 20 commands alternating between two builds: daemon starts; and each build's warm latency
  right after the other build ran / right after itself ran (a shuffled sequence of 60);
- 100 `issue show` on one grite.Client (daemon) / in-process; `grite batch` of 100 / 100
  CLI processes; 50 CLI processes at once / 50 bare starts at once; daemon RSS idle.

The machine this runs on may be shared: ratios within one run are what to compare, absolute
times move with the load. `--write` replaces the section titled `--title` (default "Daemon
benchmark") in benchmarks/RESULTS.md with this run's table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import loadgen  # noqa: E402

from grite.model.events import IssueCreated  # noqa: E402
from grite.model.hashing import make_event  # noqa: E402
from grite.storage.wal import Wal, append_with_retry  # noqa: E402

ACTOR = bytes.fromhex("42" * 16)
FALLBACK_MARKS = ("daemon not used", "GRITE_DAEMON=require")
Row = dict[str, str]


def _fill(repo: Path, n: int) -> None:
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    wal = Wal(str(repo / ".git"))
    batch = []
    for i in range(n):
        batch.append(
            make_event(
                issue_id=os.urandom(16), actor=ACTOR, ts_unix_ms=1_700_000_000_000 + i,
                kind=IssueCreated(title=f"issue number {i}", body="body text", labels=["bench"]),
            )
        )  # fmt: skip
        if len(batch) == 500:
            append_with_retry(wal, ACTOR, batch)
            batch = []
    if batch:
        append_with_retry(wal, ACTOR, batch)
    wal.close()


def _install(tree: Path, venv: Path, scratch: Path, marker: str | None) -> None:
    """A wheel of `tree` (with `marker` appended to one module: another build) in `venv`."""
    src = scratch / f"src-{venv.name}"
    shutil.copytree(tree, src, ignore=shutil.ignore_patterns(".git", "*.egg-info", "build"))
    if marker:
        with open(src / "grite" / "cli" / "render.py", "a") as f:
            f.write(f"# {marker}\n")
    dist = scratch / f"dist-{venv.name}"
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(dist), str(src)], check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    wheel = next(dist.glob("*.whl"))
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index",
                    str(wheel)], check=True)  # fmt: skip
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    deps = subprocess.run(
        [sys.executable, "-c", "import msgspec, os; print(os.path.dirname(os.path.dirname("
         "msgspec.__file__)))"], capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "zz-grite-bench-deps.pth").write_text(deps + "\n")


class World:
    """The private directories, the environment and the two installed builds."""

    def __init__(self, base: Path, tree: Path) -> None:
        self.base = base
        self.runtime = Path(tempfile.mkdtemp(prefix="gb", dir="/tmp"))  # short: socket paths
        self.runtime.chmod(0o700)
        home = base / "home"
        (base / "tmp").mkdir()
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GRITE_", "XDG_"))}
        env.pop("PYTHONPATH", None)
        env.update(
            HOME=str(home),
            TMPDIR=str(base / "tmp"),
            XDG_RUNTIME_DIR=str(self.runtime),
            XDG_STATE_HOME=str(home / "state"),
            XDG_CONFIG_HOME=str(home / "config"),
            GRITE_DAEMON_IDLE_TIMEOUT="900",
            TZ="UTC",
        )
        self.env = env
        self.strict = {**env, "GRITE_DAEMON": "require", "GRITE_DEBUG": "1"}
        self.auto = {**env, "GRITE_DEBUG": "1"}
        self.local = {**env, "GRITE_NO_DAEMON": "1"}
        scratch = base / "build"
        scratch.mkdir()
        self.a = base / "venv-a"
        self.b = base / "venv-b"
        _install(tree, self.a, scratch, None)
        _install(tree, self.b, scratch, "another build")
        self.log = home / "state" / "grite" / "daemon.log"
        self.fallbacks = 0

    def grite(self, venv: Path) -> list[str]:
        return [str(venv / "bin" / "grite")]

    def python(self, venv: Path) -> str:
        return str(venv / "bin" / "python")

    def run(
        self,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        stdin: str | None = None,
        keep_stdout: bool = True,
    ) -> str:
        # Timed runs send stdout to /dev/null, as the bare-start baseline's goes: a pipe read
        # by this process would add its reading to the command's time.
        proc = subprocess.run(argv, cwd=cwd, env=env, input=stdin, stderr=subprocess.PIPE,
                              stdout=subprocess.PIPE if keep_stdout else subprocess.DEVNULL,
                              text=True, check=False)  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"{argv} exited {proc.returncode}: {proc.stdout}{proc.stderr}")
        out = proc.stdout or ""
        if env is self.strict and any(m in proc.stderr + out for m in FALLBACK_MARKS):
            self.fallbacks += 1
        return out

    def timed(self, argv: list[str], cwd: Path, env: dict[str, str]) -> float:
        t = time.perf_counter()
        self.run(argv, cwd, env, keep_stdout=False)
        return time.perf_counter() - t

    def stop_daemons(self) -> None:
        for venv in (self.a, self.b):
            subprocess.run([*self.grite(venv), "daemon", "stop"], env=self.env,
                           capture_output=True, check=False, cwd=self.base)  # fmt: skip

    def daemon_pid(self, venv: Path) -> int | None:
        out = self.run([*self.grite(venv), "daemon", "status", "--json"], self.base, self.env)
        data = json.loads(out)["data"]
        return int(data["pid"]) if data.get("running") else None

    def wait_daemon(self, venv: Path, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.daemon_pid(venv)
            if pid is not None:
                return pid
            time.sleep(0.1)
        raise RuntimeError("no daemon came up")

    def daemon_starts(self) -> int:
        try:
            return len(re.findall(r"grite daemon \d+ serving", self.log.read_text()))
        except FileNotFoundError:
            return 0

    def build_id(self, venv: Path) -> str:
        code = "from grite.ipc import protocol; print(protocol.build_id())"
        return self.run([self.python(venv), "-c", code], self.base, self.env).strip()

    def close(self) -> None:
        self.stop_daemons()
        pids = subprocess.run(["pgrep", "-f", f"grite.daemon.*{self.runtime}"],
                              capture_output=True, text=True, check=False).stdout.split()  # fmt: skip
        for pid in pids:
            os.kill(int(pid), signal.SIGKILL)
        shutil.rmtree(self.runtime, ignore_errors=True)


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _median(fn: Callable[[], float], n: int) -> float:
    return statistics.median(fn() for _ in range(n))


def _interleaved(a: Callable[[], float], b: Callable[[], float], n: int) -> tuple[float, float]:
    xs, ys = [], []
    for _ in range(n):
        xs.append(a())
        ys.append(b())
    return statistics.median(xs), statistics.median(ys)


def _together(argvs: list[list[str]], cwd: Path, env: dict[str, str]) -> float:
    t = time.perf_counter()
    procs = [subprocess.Popen(a, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for a in argvs]  # fmt: skip
    for p in procs:
        p.wait()
    return time.perf_counter() - t


_CLIENT = """
import json, sys, time, grite
repo, issue, mode = sys.argv[1], sys.argv[2], sys.argv[3]
daemon = {"daemon": True, "local": False}[mode]
with grite.Client(repo, daemon=daemon) as g:
    g.issue_show(issue)
    t = time.perf_counter()
    for _ in range(100):
        g.issue_show(issue)
    elapsed = time.perf_counter() - t
    served = getattr(g, "served_by", "unknown (this build cannot tell)")
    print(json.dumps({"seconds": elapsed, "served_by": served,
                      "fallbacks": getattr(g, "fallbacks", None)}))
"""


def _ratio_row(name: str, value: float, base: float, unit: str, target: str, ok: bool | None,
               served: str, base_name: str) -> Row:  # fmt: skip
    def fmt(x: float) -> str:
        if unit == "ms":
            return f"{x * 1000:.1f} ms"
        if unit == "us":
            return f"{x * 1e6:.0f} µs"
        if unit == "/s":
            return f"{x:,.0f}/s"
        return f"{x:g}"

    return {
        "row": name,
        "measured": fmt(value),
        "baseline": f"{fmt(base)} ({base_name})",
        "ratio": f"{value / base:.2f}x" if base else "-",
        "target": target,
        "verdict": "-" if ok is None else ("PASS" if ok else "MISS"),
        "served": served,
    }


def measure(args: argparse.Namespace, w: World) -> list[Row]:
    rows: list[Row] = []
    repo = w.base / "repo"
    _fill(repo, args.issues)
    a, b = w.a, w.b
    ga, gb = w.grite(a), w.grite(b)
    w.run([*ga, "--no-daemon", "issue", "list"], repo, w.local)  # builds the view
    listed = json.loads(w.run([*ga, "--no-daemon", "issue", "list", "--limit", "1", "--json"],
                              repo, w.local))  # fmt: skip
    issue = listed["data"]["issues"][0]["issue_id"]

    # -- warm CLI ------------------------------------------------------------------------
    w.run([*ga, "issue", "list"], repo, w.strict)  # starts A's daemon (strict: waits)
    bare = [w.python(a), "-c", "pass"]
    before = w.fallbacks
    bare_t, warm_list = _interleaved(
        lambda: w.timed(bare, repo, w.env),
        lambda: w.timed([*ga, "issue", "list"], repo, w.strict), 20,
    )  # fmt: skip
    _, warm_show = _interleaved(
        lambda: w.timed(bare, repo, w.env),
        lambda: w.timed([*ga, "issue", "show", issue], repo, w.strict), 20,
    )  # fmt: skip
    msgspec_t = _median(lambda: w.timed([w.python(a), "-c", "import msgspec"], repo, w.env), 20)
    served = "daemon" if w.fallbacks == before else f"FALLBACK ({w.fallbacks - before})"
    rows.append(_ratio_row(f"warm `grite issue list` ({args.issues} issues, median of 20)",
                           warm_list, bare_t, "ms", "<= 1.5x", warm_list <= 1.5 * bare_t,
                           served, "`python -c pass`"))  # fmt: skip
    rows.append(_ratio_row("warm `grite issue show` (median of 20)", warm_show, bare_t, "ms",
                           "<= 1.5x", warm_show <= 1.5 * bare_t, served,
                           "`python -c pass`"))  # fmt: skip
    rows.append(_ratio_row("for scale: `python -c 'import msgspec'` (median of 20)", msgspec_t,
                           bare_t, "ms", "-", None, "-", "`python -c pass`"))  # fmt: skip

    # -- the daemon's own cost: one persistent connection, then 50 ------------------------
    pid = w.wait_daemon(a)
    sock = str(w.runtime / "grite" / "daemon.sock")
    build = w.build_id(a)
    show = {"type": "issue_show", "issue": issue}
    echo_sock = str(w.runtime / "echo.sock")
    echo = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "loadgen.py"), echo_sock,
                             "--echo"], env=w.env)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(echo_sock) and time.monotonic() < deadline:
            time.sleep(0.05)
        loadgen.run(sock, build, show, str(repo), requests=200)  # warm
        n = 3000
        c0 = _cpu_ticks(pid)
        one = loadgen.run(sock, build, show, str(repo), requests=n)
        cpu = (_cpu_ticks(pid) - c0) / os.sysconf("SC_CLK_TCK") / max(one["requests"], 1)
        e0 = _cpu_ticks(echo.pid)
        echo_one = loadgen.run(echo_sock, "echo", show, str(repo), requests=n)
        echo_cpu = (_cpu_ticks(echo.pid) - e0) / os.sysconf("SC_CLK_TCK") / n
        many = loadgen.run(sock, build, show, str(repo), connections=50, depth=4, seconds=3)
        echo_many = loadgen.run(echo_sock, "echo", show, str(repo), connections=50, depth=4,
                                seconds=3)  # fmt: skip
    finally:
        echo.terminate()
        echo.wait()
    failures = one["failures"] + many["failures"]
    served = "daemon" if not failures else f"FAILED {failures}: {one['first_failure']}"
    rows.append(_ratio_row("daemon CPU per warm `issue show`, one persistent connection", cpu,
                           echo_cpu, "us", "<= 100 µs", cpu <= 100e-6, served,
                           "asyncio echo server"))  # fmt: skip
    rows.append(_ratio_row("`issue show`/s, one load process, 50 connections x 4 in flight",
                           many["per_second"], echo_many["per_second"], "/s", ">= 10,000/s",
                           many["per_second"] >= 10_000, served,
                           "asyncio echo server"))  # fmt: skip
    rows.append(_ratio_row("`issue show`/s, one connection, one in flight", one["per_second"],
                           echo_one["per_second"], "/s", "-", None, served,
                           "asyncio echo server"))  # fmt: skip

    # -- group commit -------------------------------------------------------------------
    ids = [r["issue_id"] for r in json.loads(w.run([*ga, "issue", "list", "--limit", "50",
                                                    "--json"], repo, w.strict))["data"]["issues"]]  # fmt: skip
    comment = {"type": "issue_comment", "issue": ids[0], "body": "one writer"}
    single = loadgen.run(sock, build, comment, str(repo), seconds=3, unique=True)
    fifty = _writers(sock, build, ids, repo, 50, 3.0)
    served = (
        "daemon"
        if not single["failures"] + fifty["failures"]
        else (
            f"FAILED {single['failures'] + fifty['failures']}: "
            f"{single['first_failure'] or fifty['first_failure']}"
        )
    )
    rows.append(_ratio_row("acknowledged writes/s, 50 concurrent writers (group commit)",
                           fifty["per_second"], single["per_second"], "/s",
                           ">= 1,000/s and >= 8x",
                           fifty["per_second"] >= 1000
                           and fifty["per_second"] >= 8 * single["per_second"],
                           served, "one writer"))  # fmt: skip

    # -- Client and batch ------------------------------------------------------------------
    def client(mode: str) -> dict[str, Any]:
        env = w.strict if mode == "daemon" else w.local
        return json.loads(w.run([w.python(a), "-c", _CLIENT, str(repo), issue, mode], repo, env))

    lib_d, lib_l = client("daemon"), client("local")
    served = f"{lib_d['served_by']} (fallbacks: {lib_d['fallbacks']})"
    rows.append(_ratio_row("100 `issue show` on one grite.Client", lib_d["seconds"],
                           lib_l["seconds"], "ms", "-", None, served,
                           "grite.Client in-process"))  # fmt: skip
    lines = "".join(json.dumps(show) + "\n" for _ in range(100))
    t = time.perf_counter()
    out = w.run([*ga, "batch"], repo, w.strict, stdin=lines)
    batch_t = time.perf_counter() - t
    assert len(out.splitlines()) == 100
    cli_t = 0.0
    for _ in range(100):
        cli_t += w.timed([*ga, "issue", "show", issue], repo, w.strict)
    served = "daemon" if w.fallbacks == 0 else f"FALLBACK ({w.fallbacks})"
    rows.append(_ratio_row("`grite batch` of 100 `issue show`", batch_t, cli_t, "ms", "-", None,
                           served, "100 CLI processes"))  # fmt: skip
    conc = _median(lambda: _together([[*ga, "issue", "list"]] * 50, repo, w.strict), 3)
    bare50 = _median(lambda: _together([bare] * 50, repo, w.env), 3)
    rows.append(_ratio_row("50 `grite issue list` processes at once (wall)", conc, bare50, "ms",
                           "-", None, served, "50 bare starts at once"))  # fmt: skip

    # -- cold start ------------------------------------------------------------------------
    cold, local = [], []
    for _ in range(args.cold_runs):
        w.stop_daemons()
        cold.append(w.timed([*ga, "issue", "list"], repo, w.auto))
        w.wait_daemon(a)  # the daemon it started in the background (or not: then it fails)
        w.stop_daemons()
        local.append(w.timed([*ga, "--no-daemon", "issue", "list"], repo, w.local))
    cold_m, local_m = statistics.median(cold), statistics.median(local)
    rows.append(_ratio_row(f"first `grite issue list`, no daemon running (median of "
                           f"{args.cold_runs})", cold_m, local_m, "ms", "<= 1.1x",
                           cold_m <= 1.1 * local_m, "auto (no daemon yet)",
                           "`--no-daemon`"))  # fmt: skip

    # -- two builds used alternately ----------------------------------------------------
    # From A's daemon alone: twenty commands alternating A and B count the daemon starts
    # (B's first command starts B's daemon: one). Then a shuffled run of 60 commands compares
    # each build's latency right after the other build ran with its latency right after
    # itself: both halves see the same machine load, which drifts on a shared machine.
    w.stop_daemons()
    w.run([*ga, "issue", "list"], repo, w.strict)  # A's daemon, warm
    starts = w.daemon_starts()
    for i in range(20):
        w.timed([*(ga if i % 2 == 0 else gb), "issue", "list"], repo, w.auto)
    restarts = w.daemon_starts() - starts
    w.run([*gb, "issue", "list"], repo, w.strict)  # B's daemon (started above), warm
    rng = random.Random(11)
    sides = [rng.choice("ab") for _ in range(60)]
    after: dict[tuple[str, bool], list[float]] = {}
    previous = ""
    for side in sides:
        t = w.timed([*(ga if side == "a" else gb), "issue", "list"], repo, w.strict)
        if previous:
            after.setdefault((side, previous != side), []).append(t)
        previous = side
    served = "daemon" if w.fallbacks == 0 else f"FALLBACK ({w.fallbacks})"
    rows.append({"row": "daemon starts during 20 commands alternating two builds",
                 "measured": str(restarts), "baseline": "-", "ratio": "-",
                 "target": "<= 1", "verdict": "PASS" if restarts <= 1 else "MISS",
                 "served": "auto"})  # fmt: skip
    for side, name in (("a", "A"), ("b", "B")):
        alt = statistics.median(after.get((side, True), [0.0]))
        alone = statistics.median(after.get((side, False), [0.0]))
        rows.append(_ratio_row(f"build {name} warm `issue list` right after the other build",
                               alt, alone, "ms", "<= 1.1x", alt <= 1.1 * alone, served,
                               f"build {name} right after itself"))  # fmt: skip

    # -- memory ---------------------------------------------------------------------------
    w.stop_daemons()
    w.run([*ga, "daemon", "start"], w.base, w.env)
    rss = _rss_kib(w.wait_daemon(a))
    rows.append({"row": "daemon RSS idle (no repository opened)", "measured":
                 f"{rss / 1024:.1f} MB", "baseline": "-", "ratio": "-", "target": "< 25 MB",
                 "verdict": "PASS" if rss < 25 * 1024 else "MISS", "served": "-"})  # fmt: skip
    return rows


def _writers(
    sock: str, build: str, ids: list[str], repo: Path, n: int, seconds: float
) -> dict[str, Any]:
    """`n` writers at once, each commenting on its own issue (one write in flight each)."""
    import asyncio

    import msgspec

    async def all_writers() -> dict[str, Any]:
        stats = loadgen._Stats()
        deadline = time.monotonic() + seconds
        start = time.monotonic()

        async def one(k: int) -> None:
            op = msgspec.msgpack.encode(
                {"type": "issue_comment", "issue": ids[k % len(ids)], "body": f"writer {k}"}
            )
            await loadgen._connection(sock, build, op, str(repo), 1, deadline, None, True, stats)

        await asyncio.gather(*(one(k) for k in range(n)))
        elapsed = time.monotonic() - start
        return {"requests": stats.done, "seconds": elapsed, "per_second": stats.done / elapsed,
                "failures": stats.failures, "first_failure": stats.first_failure}  # fmt: skip

    return asyncio.run(all_writers())


def table(rows: list[Row], command: str, tree: str) -> str:
    lines = [
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load average at the end "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}; tree: {tree}; command: `{command}`",
        "",
        "| row | measured | baseline (same run) | ratio | target | verdict | served by |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['row']} | {r['measured']} | {r['baseline']} | {r['ratio']} | {r['target']} | "
        f"{r['verdict']} | {r['served']} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def _write_results(title: str, text: str) -> None:
    path = ROOT / "benchmarks" / "RESULTS.md"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    heading = f"## {title}"
    section = f"{heading}\n\n{text}"
    if heading + "\n" in old:
        head, _, rest = old.partition(heading + "\n")
        tail = rest.split("\n## ", 1)
        old = head + section + ("\n## " + tail[1] if len(tail) > 1 else "")
    else:
        old = old.rstrip("\n") + "\n\n" + section
    path.write_text(old)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=str(ROOT), help="the grite source tree to measure")
    parser.add_argument("--issues", type=int, default=1000)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--workdir", help="where the temporary base goes (default: TMPDIR)")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("--title", default="Daemon benchmark")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="grite-bench-", dir=args.workdir))
    world = World(base, Path(args.tree).resolve())
    try:
        rows = measure(args, world)
    finally:
        world.close()
        shutil.rmtree(base, ignore_errors=True)
    command = "python3 benchmarks/bench_daemon.py " + " ".join(sys.argv[1:])
    text = table(rows, command.strip(), args.tree)
    print(text)
    if args.write:
        _write_results(args.title, text)


if __name__ == "__main__":
    main()
