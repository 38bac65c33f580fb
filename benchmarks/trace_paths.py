"""Which grite source files one warm `grite issue create` passes through, on both paths.

    python3 benchmarks/trace_paths.py [--source DIR] [--json]

A newcomer follows a command through the code; this counts what they would have to read. Each
path runs one warm-up command (imports done, the daemon's repository open) and then the traced
one. A profile hook (sys.setprofile and threading.setprofile) records every call of a grite
function (module bodies excluded: imports are not the command), per thread:

- in-process (GRITE_NO_DAEMON=1): the `grite` command in one process;
- daemon (GRITE_DAEMON=require): the client process plus the daemon's threads during the
  client's command (the daemon runs under the same hook; its calls are kept when they fall in
  the client's time window, CLOCK_MONOTONIC being system-wide).

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
events = []  # (monotonic ns, thread id, file)
recording = [mode == "daemon"]
pkg = os.sep + "grite" + os.sep

def prof(frame, event, arg):
    if event != "call" or not recording[0]:
        return
    code = frame.f_code
    name = code.co_filename
    if pkg in name and code.co_name != "<module>":
        events.append((time.monotonic_ns(), threading.get_ident(), name[name.rindex(pkg) + 1:]))

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

from grite.cli.entry import route
argv = ["issue", "create", "--title", "warm-up", "--quiet"]
assert route(argv, os.environ) == 0
recording[0] = True
threading.setprofile(prof)
sys.setprofile(prof)
start = time.monotonic_ns()
code = route(["issue", "create", "--title", "traced", "--quiet"], os.environ)
end = time.monotonic_ns()
sys.setprofile(None)
threading.setprofile(None)
dump({"start": start, "end": end, "code": code})
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
    files: list[str] = []
    switches = 0
    last: dict[object, str] = {}
    for _, thread, name in events:
        assert isinstance(name, str)
        if name not in files:
            files.append(name)
        if thread in last and last[thread] != name:
            switches += 1
        last[thread] = name
    return {"files": len(files), "switches": switches, "calls": len(events), "list": files}


def trace_local(base: Path, source: Path | None) -> dict[str, object]:
    env = _env(base, source)
    repo = _repo(base, env)
    out = base / "local.json"
    subprocess.run(
        [sys.executable, "-c", _CHILD, "client", str(out)],
        cwd=repo, env={**env, "GRITE_NO_DAEMON": "1"}, check=True,
    )  # fmt: skip
    data = json.loads(out.read_text())
    assert data["code"] == 0
    return _summary(data["events"])


def trace_daemon(base: Path, source: Path | None) -> dict[str, object]:
    env = _env(base, source)
    repo = _repo(base, env)
    sock = Path(env["XDG_RUNTIME_DIR"]) / "grite" / "daemon.sock"
    sock.parent.mkdir(mode=0o700)
    daemon_out = base / "daemon.json"
    daemon = subprocess.Popen(
        [sys.executable, "-c", _CHILD, "daemon", str(daemon_out),
         "--socket-path", str(sock), "--idle-timeout", "2", "--foreground"],
        cwd=base, env=env, stderr=subprocess.DEVNULL,  # not this checkout: `-c` imports from cwd
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not sock.exists():
        assert time.monotonic() < deadline and daemon.poll() is None, "the daemon did not start"
        time.sleep(0.05)
    client_out = base / "client.json"
    try:
        subprocess.run(
            [sys.executable, "-c", _CHILD, "client", str(client_out)],
            cwd=repo, env={**env, "GRITE_DAEMON": "require"}, check=True,
        )  # fmt: skip
    finally:
        daemon.wait(timeout=60)
    client = json.loads(client_out.read_text())
    assert client["code"] == 0
    served = [
        e for e in json.loads(daemon_out.read_text())["events"]
        if client["start"] <= e[0] <= client["end"]
    ]  # fmt: skip
    summary = _summary(client["events"] + served)
    summary["client"] = _summary(client["events"])
    summary["daemon"] = _summary(served)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="another checkout's root to compare with")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    args = parser.parse_args()
    results = {}
    runs = [("this checkout", None)] + (
        [("--source", args.source.resolve())] if args.source else []
    )
    for label, source in runs:
        with tempfile.TemporaryDirectory(prefix="grite-trace-") as tmp:
            base = Path(tmp)
            (base / "a").mkdir()
            (base / "b").mkdir()
            results[label] = {
                "in-process": trace_local(base / "a", source),
                "daemon": trace_daemon(base / "b", source),
            }
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for label, paths in results.items():
        for path, s in paths.items():
            print(f"{label:14} {path:10} {s['files']:3} files {s['switches']:4} switches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
