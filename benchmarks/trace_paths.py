"""Which grite source files one `issue create` passes through, on every path.

    python3 benchmarks/trace_paths.py [--source DIR] [--json]

A newcomer follows a command through the code; this counts what they would have to read. Two
callers (the `grite` command, grite.Client's issue_create) each create two issues, in-process
(GRITE_NO_DAEMON=1) and through a daemon (GRITE_DAEMON=require). A profile hook
(sys.setprofile and threading.setprofile) records every call of a grite function, per thread,
in the caller and, through a daemon, in the daemon (its calls are kept when they fall in the
caller's time window; CLOCK_MONOTONIC is system-wide). The first call counts module bodies too
(what it had to import, the daemon's lazy loads included); three more, 1.5 s apart, only
function calls (warm), and the one that touched the fewest files is reported: a timer of the
daemon's housekeeping (heartbeat, idle check) may fire inside one call's window.

It prints the files touched and the file-to-file switches (consecutive calls, in one thread,
to functions of different files). `--source DIR` runs another checkout's grite (e.g. a
worktree of an older commit) for a before/after comparison in the same command. Everything
runs in a private HOME, XDG_RUNTIME_DIR and TMPDIR.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = r"""
import json, os, sys, threading, time
mode, out_path = sys.argv[1], sys.argv[2]
events = []  # (monotonic ns, thread id, file, is a module body)
recording = [mode == "daemon"]
pkg = os.sep + "grite" + os.sep

def prof(frame, event, arg):
    if event != "call" or not recording[0]:
        return
    code = frame.f_code
    name = code.co_filename
    if pkg in name:
        events.append((time.monotonic_ns(), threading.get_ident(),
                       name[name.rindex(pkg) + 1:], code.co_name == "<module>"))

def dump(extra):
    with open(out_path, "w") as f:
        json.dump({"events": events, **extra}, f)

if mode == "daemon":
    import atexit
    atexit.register(dump, {})
    threading.setprofile(prof)
    sys.setprofile(prof)
    from grite.daemon.main import main
    raise SystemExit(main(sys.argv[3:]))

def create(title):
    if mode == "cli":
        from grite.cli.entry import route
        return route(["issue", "create", "--title", title, "--quiet"], os.environ)
    import grite
    with grite.Client(os.getcwd()) as client:
        client.issue_create(title)
    return 0

windows = []
for title in ("first", "second", "third", "fourth"):
    recording[0] = True
    threading.setprofile(prof)
    sys.setprofile(prof)
    start = time.monotonic_ns()
    code = create(title)
    windows.append((start, time.monotonic_ns()))
    sys.setprofile(None)
    threading.setprofile(None)
    recording[0] = False
    assert code == 0
    time.sleep(1.5)  # the daemon's background preload finishes: the next call is warm
dump({"windows": windows})
"""


def _env(base: Path, source: Path | None) -> dict[str, str]:
    home = base / "home"
    run = Path(tempfile.mkdtemp(prefix="gt", dir="/tmp"))
    run.chmod(0o700)
    (base / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRITE_", "XDG_"))}
    env.update(
        HOME=str(home),
        XDG_RUNTIME_DIR=str(run),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CONFIG_DIRS=str(home / "etc-xdg"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        TMPDIR=str(base / "tmp"),
        GIT_CONFIG_NOSYSTEM="1",
        TZ="UTC",
    )
    if source is not None:
        env["PYTHONPATH"] = str(source)
    return env


def _repo(base: Path, env: dict[str, str]) -> Path:
    repo = base / "repo"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["config", "user.email", "t@example.com"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env)
    subprocess.run(
        [sys.executable, "-m", "grite", "init", "--no-agents-md", "--quiet"],
        cwd=repo, env={**env, "GRITE_NO_DAEMON": "1"}, check=True,
    )  # fmt: skip
    return repo


def _summary(events: list[list[object]]) -> dict[str, object]:
    """Files touched and file-to-file switches (per thread) of one call's events."""
    files: list[str] = []
    switches = 0
    last: dict[object, str] = {}
    for _, thread, name, _module in events:
        assert isinstance(name, str)
        if name not in files:
            files.append(name)
        if thread in last and last[thread] != name:
            switches += 1
        last[thread] = name
    return {"files": len(files), "switches": switches, "calls": len(events), "list": files}


def _calls(
    events: list[list[object]], windows: list[list[int]]
) -> tuple[list[list[object]], list[list[object]]]:
    """The first call's events (module bodies included: what it had to import) and those of
    the warm call (function calls only) that touched the fewest files."""
    (s1, e1), *later = windows
    first = [e for e in events if s1 <= e[0] <= e1]  # type: ignore[operator]
    warm = [
        [e for e in events if s <= e[0] <= end and not e[3]]  # type: ignore[operator]
        for s, end in later
    ]
    return first, min(warm, key=lambda calls: len({e[2] for e in calls}))


def trace(base: Path, source: Path | None, caller: str, daemon: bool) -> dict[str, object]:
    """One caller ("cli" or "api") creating two issues, in-process or through a daemon."""
    env = _env(base, source)
    repo = _repo(base, env)
    served: list[list[object]] = []
    proc = None
    if daemon:
        sock = Path(env["XDG_RUNTIME_DIR"]) / "grite" / "daemon.sock"
        sock.parent.mkdir(mode=0o700)
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, "daemon", str(base / "daemon.json"),
             "--socket-path", str(sock), "--idle-timeout", "4", "--foreground"],
            cwd=base, env=env, stderr=subprocess.DEVNULL,  # not this checkout: `-c` imports cwd
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert time.monotonic() < deadline and proc.poll() is None, "no daemon"
            time.sleep(0.05)
        env = {**env, "GRITE_DAEMON": "require"}
    else:
        env = {**env, "GRITE_NO_DAEMON": "1"}
    try:
        subprocess.run(
            [sys.executable, "-c", _CHILD, caller, str(base / "client.json")],
            cwd=repo, env=env, check=True,
        )  # fmt: skip
    finally:
        if proc is not None:
            proc.wait(timeout=60)
    client = json.loads((base / "client.json").read_text())
    windows = client["windows"]
    if proc is not None:
        served = json.loads((base / "daemon.json").read_text())["events"]
    cold, warm = _calls(client["events"] + sorted(served), windows)
    return {"cold": _summary(cold), "warm": _summary(warm)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="another checkout's root to compare with")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    args = parser.parse_args()
    results: dict[str, dict[str, object]] = {}
    runs = [("this checkout", None)] + (
        [("--source", args.source.resolve())] if args.source else []
    )
    cases = [(c, d) for c in ("cli", "api") for d in (False, True)]
    for label, source in runs:
        results[label] = {}
        for caller, daemon in cases:
            with tempfile.TemporaryDirectory(prefix="grite-trace-") as tmp:
                name = f"{'grite' if caller == 'cli' else 'Client'} {'daemon' if daemon else 'in-process'}"
                results[label][name] = trace(Path(tmp), source, caller, daemon)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'':14} {'':18} {'first call (imports too)':>26}   {'warm call':>22}")
    for label, paths in results.items():
        for path, r in paths.items():
            c, w = r["cold"], r["warm"]  # type: ignore[index]
            print(
                f"{label:14} {path:18} {c['files']:4} files {c['switches']:5} switches"
                f"   {w['files']:4} files {w['switches']:5} switches"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
