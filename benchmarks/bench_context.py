"""Benchmark of `grite context index` (issue 12), in-process, excluding interpreter start.

    python3 benchmarks/bench_context.py --repo PATH [--workdir DIR]

PATH is any git repository (a checkout or a bare mirror); it is cloned into a temp dir under
`--workdir` so the run starts from a clean, untouched work tree. Without --repo the corpus is
the Python standard library's own sources, committed to a fresh repository.

Rows, all on the same clone in one run:
- baseline: read and SHA-256 every tracked file (the I/O any indexer pays), files/s;
- first `context index` (empty context store: parse every file, write every event), files/s;
- second `context index` (nothing changed: every file skipped by its content hash), files/s;
- `context index` after one file changed;
- `context query` of a common prefix, warm handle.
Each index row also gives its ratio to the baseline. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grite.cli.app import run_invocation  # noqa: E402
from grite.model.invocation import Invocation  # noqa: E402


def _run(repo: Path, *argv: str) -> tuple[float, str]:
    inv = Invocation(
        argv=[*argv, "--json"], cwd=str(repo), env={}, request_id=os.urandom(16),
        now_ms=time.time_ns() // 10**6,
    )  # fmt: skip
    start = time.perf_counter()
    out = run_invocation(inv)
    elapsed = time.perf_counter() - start
    if out.exit_code != 0:
        raise SystemExit(f"grite {' '.join(argv)} failed: {out.stdout}{out.stderr}")
    return elapsed, out.stdout


def _stdlib_repo(root: Path) -> Path:
    repo = root / "stdlib"
    lib = Path(sysconfig.get_paths()["stdlib"])
    shutil.copytree(lib, repo, ignore=shutil.ignore_patterns("site-packages", "__pycache__"))
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    return repo


def _clone(source: str, root: Path) -> Path:
    repo = root / "repo"
    subprocess.run(["git", "clone", "-q", source, str(repo)], check=True)
    return repo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", help="git repository to index (default: the stdlib corpus)")
    parser.add_argument("--workdir", default=None, help="where to put the clone")
    opts = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="grite-bench-ctx-", dir=opts.workdir))
    try:
        repo = _clone(opts.repo, root) if opts.repo else _stdlib_repo(root)
        files = subprocess.run(
            ["git", "-C", str(repo), "ls-files", "-z"], capture_output=True, check=True
        ).stdout.split(b"\0")
        files = [f for f in files if f]
        start = time.perf_counter()
        for name in files:
            try:
                hashlib.sha256((repo / name.decode()).read_bytes()).digest()
            except OSError:
                pass
        baseline = time.perf_counter() - start

        import json

        first_s, first_out = _run(repo, "context", "index")
        first = json.loads(first_out)["data"]
        second_s, second_out = _run(repo, "context", "index")
        second = json.loads(second_out)["data"]
        victim = next(repo / f.decode() for f in files if f.endswith(b".py"))
        with open(victim, "a", encoding="utf-8") as f:
            f.write("\n\ndef bench_added_function():\n    pass\n")
        one_s, one_out = _run(repo, "context", "index")
        one = json.loads(one_out)["data"]
        query_s, query_out = _run(repo, "context", "query", "test")
        matches = json.loads(query_out)["data"]["count"]
        commits = subprocess.run(
            ["git", "-C", str(repo), "rev-list", "--count", "refs/grite/wal"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip

        n = len(files)
        print(f"\nRepository: {opts.repo or 'Python ' + platform.python_version() + ' stdlib'}; "
              f"{n} tracked files, {first['indexed']} indexed, {first['symbol_count']} symbols, "
              f"{commits} WAL commits; {platform.machine()}, Python {platform.python_version()}, "
              f"load average {os.getloadavg()[0]:.1f}\n")  # fmt: skip
        print("| measurement | time | files/s | vs baseline |")
        print("|---|---|---|---|")
        print(f"| baseline: read + SHA-256 of every tracked file | {baseline:.2f} s | "
              f"{n / baseline:,.0f} | 1.0x |")  # fmt: skip
        for label, secs, data in (
            ("first `context index` (empty store)", first_s, first),
            ("second `context index` (nothing changed)", second_s, second),
        ):
            print(f"| {label}: {data['indexed']} indexed, {data['skipped']} skipped | "
                  f"{secs:.2f} s | {n / secs:,.0f} | {secs / baseline:.1f}x |")  # fmt: skip
        print(f"| `context index` after 1 file changed: {one['indexed']} indexed | {one_s:.2f} s "
              f"| {n / one_s:,.0f} | {one_s / baseline:.1f}x |")  # fmt: skip
        print(f"| `context query test` ({matches} matches) | {query_s * 1000:.1f} ms | | |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
