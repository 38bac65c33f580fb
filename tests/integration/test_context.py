"""`grite context index|query|show|project|set` as a user drives it, in both modes, on real git
repositories, checked against grite 0.5.3's behaviour and bytes
(https://github.com/neul-labs/grite: crates/grite/src/commands/context.rs for the commands,
crates/libgrite-core/src/context/ for ids, languages and summaries, crates/libgrite-core/src/
hash.rs for the event payload).

The corpus is built at test time from files every machine has offline: the Python standard
library's own sources (a few hundred real files), plus one small file per other language 0.5.3
indexes. CI reaches no network but package registries, so a cloned project cannot be fetched
here; the benchmark (benchmarks/bench_context.py) runs on a real cloned repository instead.
Python's `ast` module is the independent oracle for the Python files' symbols.
"""

from __future__ import annotations

import ast
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sysconfig
import time
from pathlib import Path
from typing import Any

import cbor2
import pytest

from tests.conftest import Grite, assert_fsck_clean, git, wal_commit_count, wal_head

# Standard-library packages copied into the corpus (real code: classes, nested functions,
# decorators, async defs). Sorted file order makes the corpus the same on every run.
_STDLIB_PACKAGES = (
    "json",
    "email",
    "http",
    "logging",
    "importlib",
    "concurrent",
    "urllib",
    "asyncio",
)

# One file per other language, from 0.5.3's extractor tests (crates/libgrite-core/src/context/
# extractor/mod.rs and ts_engine.rs), with the names those tests require.
OTHER_LANGUAGES: dict[str, tuple[str, list[str]]] = {
    "src/lib.rs": (
        "pub struct Config {\n    pub name: String,\n    pub value: u32,\n}\n\n"
        "pub fn process(config: &Config) -> String {\n"
        '    format!("{}: {}", config.name, config.value)\n}\n',
        ["Config", "process"],
    ),
    "cmd/main.go": (
        "package main\n\nfunc main() {\n}\n\nfunc (s *Server) Start() error {\n"
        "    return nil\n}\n\ntype Config struct {\n    Name string\n}\n\n"
        "type Handler interface {\n    Handle()\n}\n",
        ["main", "Start", "Config", "Handler"],
    ),
    "web/app.ts": (
        "export function greet(name: string): string {\n    return name;\n}\n\n"
        "export class UserService {\n    constructor() {}\n}\n\n"
        "export interface Settings {\n    name: string;\n}\n\ntype UserId = string;\n\n"
        "const fetchData = async (url: string) => {\n    return fetch(url);\n};\n",
        ["greet", "UserService", "Settings", "UserId", "fetchData"],
    ),
    "web/App.tsx": ("export function App() {\n  return <div />;\n}\n", ["App"]),
    "web/util.js": (
        "function helper() {}\nclass Store {}\nconst load = () => 1;\n",
        ["helper", "Store", "load"],
    ),
    "java/UserService.java": (
        "public class UserService {\n    public String getName() {\n        return null;\n"
        "    }\n}\n\npublic interface Repository {\n    void save(Object entity);\n}\n",
        ["UserService", "getName", "Repository"],
    ),
    "c/point.c": (
        "struct Point {\n    int x;\n};\n\nenum Color {\n    RED\n};\n\n"
        "int main(int argc, char** argv) {\n    return 0;\n}\n",
        ["Point", "Color", "main"],
    ),
    "c/widget.hpp": (
        "namespace ui {\nclass Widget {\n public:\n  void draw();\n};\n}\n",
        ["ui", "Widget"],
    ),
    "ruby/user.rb": (
        "module Authentication\n  class User\n    def greet\n      'hi'\n    end\n  end\nend\n",
        ["Authentication", "User", "greet"],
    ),
    "lib/greeter.ex": (
        "defmodule MyApp.Greeter do\n  def hello(name) do\n    name\n  end\nend\n",
        ["MyApp.Greeter", "hello"],
    ),
}


def _stdlib_files() -> list[tuple[str, Path]]:
    lib = Path(sysconfig.get_paths()["stdlib"])
    found = [(f"py/{path.name}", path) for path in sorted(lib.glob("*.py"))]
    for package in _STDLIB_PACKAGES:
        for path in sorted((lib / package).rglob("*.py")):
            if "test" in path.relative_to(lib).parts[1:]:
                continue
            found.append((f"py/{path.relative_to(lib).as_posix()}", path))
    return found


def _ast_symbols(source: bytes) -> set[tuple[str, str, int]]:
    tree = ast.parse(source)
    return {
        (d.name, "class" if isinstance(d, ast.ClassDef) else "function", d.lineno)
        for d in ast.walk(tree)
        if isinstance(d, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }


@pytest.fixture(scope="module")
def corpus_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A committed repository of real files (built once; each test copies it)."""
    repo = tmp_path_factory.mktemp("corpus") / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "test@example.com")
    git(repo, "config", "user.name", "Test")
    for rel, src in _stdlib_files():
        dest = repo / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    for rel, (text, _names) in OTHER_LANGUAGES.items():
        dest = repo / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
    (repo / "README.md").write_text("# corpus\n")  # no language: skipped as unsupported
    (repo / "py" / "latin1.py").write_bytes(b"# caf\xe9\ndef latin():\n    pass\n")  # not UTF-8
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "corpus")
    return repo


@pytest.fixture
def corpus(corpus_template: Path, tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(corpus_template, repo, symlinks=True)
    return repo


def _tracked(repo: Path) -> list[str]:
    return git(repo, "ls-files").stdout.splitlines()


def test_index_finds_what_python_ast_finds_and_is_incremental(grite: Grite, corpus: Path) -> None:
    tracked = _tracked(corpus)
    stdlib = _stdlib_files()
    assert len(stdlib) > 150  # a few hundred real files
    first = grite.json(corpus, "context", "index")
    # 0.5.3's payload keys (commands/context.rs run_index) and counts: every readable file
    # with a language is indexed; README.md (unsupported) and latin1.py (not UTF-8) skipped.
    assert first["total_files"] == len(tracked)
    assert first["indexed"] == len(tracked) - 2
    assert first["skipped"] == 2 and first["unsupported"] == 1 and first["unreadable"] == 1
    assert first["fallback_languages"] == []  # every grammar of 0.5.3's languages loaded
    # One WAL commit per batch of at most 500 events, each a valid git object graph.
    assert wal_commit_count(corpus) == -(-first["indexed"] // 500)
    assert_fsck_clean(corpus)

    # Every (symbol, path) pair, from the view's index in one query.
    everything = grite.json(corpus, "context", "query", "")
    pairs = {(m["symbol"], m["path"]) for m in everything["matches"]}
    assert everything["count"] == len(everything["matches"]) == len(pairs)
    for rel, src in stdlib:
        names = {name for name, _kind, _line in _ast_symbols(src.read_bytes())}
        assert {n for n, p in pairs if p == rel} == names, rel
    for rel, (_text, names) in OTHER_LANGUAGES.items():
        assert set(names) <= {n for n, p in pairs if p == rel}, rel

    # `show` of one real file: names, kinds and start lines are exactly ast's; tree-sitter's
    # span ends at or after ast's (it counts trailing comments of a block).
    rel, src = next((r, s) for r, s in stdlib if r == "py/json/decoder.py")
    shown = grite.json(corpus, "context", "show", rel)
    assert {(s["name"], s["kind"], s["line_start"]) for s in shown["symbols"]} == _ast_symbols(
        src.read_bytes()
    )
    assert shown["content_hash"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert shown["language"] == "python" and shown["symbol_count"] == len(shown["symbols"])
    # extractor/mod.rs generate_summary: the first three classes (in line order) and the
    # number of functions.
    found = sorted(_ast_symbols(src.read_bytes()), key=lambda s: s[2])
    classes = [n for n, kind, _line in found if kind == "class"]
    functions = sum(1 for _n, kind, _line in found if kind == "function")
    more = f" (+{len(classes) - 3} more)" if len(classes) > 3 else ""
    assert shown["summary"] == f"defines {', '.join(classes[:3])}{more}; {functions} functions"

    # Prefix queries are case-sensitive prefixes of the name, as 0.5.3's ctx/sym/ scan.
    decoder = grite.json(corpus, "context", "query", "JSONDec")
    assert {"symbol": "JSONDecoder", "path": "py/json/decoder.py"} in decoder["matches"]
    assert all(m["symbol"].startswith("JSONDec") for m in decoder["matches"])
    assert grite.json(corpus, "context", "query", "jsondec")["count"] == 0

    # Second run: nothing changed, nothing written.
    head = wal_head(corpus)
    second = grite.json(corpus, "context", "index")
    assert (second["indexed"], second["unchanged"]) == (0, first["indexed"])
    assert wal_head(corpus) == head

    # A changed file is re-indexed alone, and its old symbols leave the index.
    changed = corpus / "py" / "json" / "tool.py"
    changed.write_text("def brand_new_function():\n    return 1\n")
    third = grite.json(corpus, "context", "index")
    assert third["indexed"] == 1 and wal_commit_count(corpus) == -(-first["indexed"] // 500) + 1
    assert grite.json(corpus, "context", "query", "brand_new")["matches"] == [
        {"symbol": "brand_new_function", "path": "py/json/tool.py"}
    ]
    assert [
        s["name"] for s in grite.json(corpus, "context", "show", "py/json/tool.py")["symbols"]
    ] == ["brand_new_function"]
    assert "py/json/tool.py" not in {
        m["path"] for m in grite.json(corpus, "context", "query", "main")["matches"]
    }
    forced = grite.json(corpus, "context", "index", "--force", "--path", "web")
    assert (forced["indexed"], forced["total_files"]) == (3, 3)


def _chunk_records(repo: Path, commit: str) -> list[list[Any]]:
    """The CBOR records of the chunk in one WAL commit, read with the git CLI and cbor2."""
    names = git(repo, "ls-tree", "-r", "--name-only", commit).stdout.split()
    chunk = next(n for n in names if n.endswith(".bin"))
    raw = subprocess.run(
        ["git", "cat-file", "blob", f"{commit}:{chunk}"], cwd=repo, capture_output=True, check=True
    ).stdout
    assert raw[:18] == b"GRITECNK\x01\x00\x07cbor-v1"
    return cbor2.loads(raw[18:])  # type: ignore[no-any-return]


def _file_id(path: str) -> bytes:
    # crates/libgrite-core/src/context/mod.rs: BLAKE2b<U16>("grite:context:file:" + path)
    return hashlib.blake2b(b"grite:context:file:" + path.encode(), digest_size=16).digest()


def _event_id(issue: bytes, actor: bytes, ts: int, tag: int, payload: list[Any]) -> bytes:
    # crates/libgrite-core/src/hash.rs: BLAKE2b-256 of CBOR [1, issue, actor, ts, parent, tag,
    # payload]; built here by hand, independently of grite.model.hashing.
    preimage = cbor2.dumps([1, issue, actor, ts, None, tag, payload])
    return hashlib.blake2b(preimage, digest_size=32).digest()


def test_events_are_the_bytes_0_5_3_writes(grite: Grite, git_repo: Path) -> None:
    source = OTHER_LANGUAGES["src/lib.rs"][0]
    (git_repo / "src").mkdir()
    (git_repo / "src" / "lib.rs").write_text(source)
    git(git_repo, "add", "-A")
    assert _file_id("src/main.rs").hex() == "e4033aa4f24d201bea69fdc78c8c3c1f"  # reference 5.12
    grite.json(git_repo, "context", "index")
    [record] = _chunk_records(git_repo, wal_head(git_repo) or "")
    event_id, issue, actor, ts, parent, tag, payload, sig = record
    assert (issue, parent, tag, sig) == (_file_id("src/lib.rs"), None, 13, None)
    path, language, symbols, summary, content_hash = payload
    assert (path, language) == ("src/lib.rs", "rust")
    # ts_engine.rs test_rust_accurate_line_ranges: Config 1-4, process 6-8; sorted by
    # (name, kind) in the payload (hash.rs).
    assert symbols == [["Config", "struct", 1, 4], ["process", "function", 6, 8]]
    assert summary == "defines Config; 1 functions"  # extractor/mod.rs generate_summary
    assert content_hash == hashlib.sha256(source.encode()).digest()
    assert event_id == _event_id(issue, actor, ts, 13, payload)

    set_result = grite.json(git_repo, "context", "set", "build", "cargo build")
    assert set_result["action"] == "set" and set_result["key"] == "build"
    [record] = _chunk_records(git_repo, wal_head(git_repo) or "")
    event_id, issue, actor, ts, _parent, tag, payload, _sig = record
    assert (issue, tag, payload) == (b"\xff" * 16, 14, ["build", "cargo build"])
    assert event_id == _event_id(issue, actor, ts, 14, payload)
    assert set_result["event_id"] == event_id.hex()
    meta = json.loads(git(git_repo, "show", f"{wal_head(git_repo)}:meta.json").stdout)
    assert meta["actor_id"] == actor.hex() and meta["schema_version"] == 1


def _teammate_commit(
    repo: Path, actor: bytes, ts: int, tag: int, issue: bytes, payload: list[Any]
) -> str:
    """Append one event to refs/grite/wal as a grite 0.5.3 CLI would (crates/libgrite-git/src/
    wal.rs: chunk file, meta.json, events/YYYY/MM/DD/<chunk_hash>.bin), with git plumbing only."""
    event_id = _event_id(issue, actor, ts, tag, payload)
    chunk = b"GRITECNK\x01\x00\x07cbor-v1" + cbor2.dumps(
        [[event_id, issue, actor, ts, None, tag, payload, None]]
    )
    chunk_hash = hashlib.blake2b(chunk, digest_size=32).hexdigest()
    parent = wal_head(repo)
    meta = json.dumps(
        {
            "schema_version": 1,
            "actor_id": actor.hex(),
            "chunk_hash": chunk_hash,
            "prev_wal": parent,
        },
        indent=2,
    )

    def blob(data: bytes) -> str:
        return subprocess.run(
            ["git", "hash-object", "-w", "--stdin"], cwd=repo, input=data, capture_output=True,
            check=True,
        ).stdout.decode().strip()  # fmt: skip

    def tree(entries: list[str]) -> str:
        return subprocess.run(
            ["git", "mktree"], cwd=repo, input="".join(f"{e}\n" for e in entries).encode(),
            capture_output=True, check=True,
        ).stdout.decode().strip()  # fmt: skip

    day = datetime.datetime.fromtimestamp(ts / 1000, tz=datetime.timezone.utc)
    node = tree([f"100644 blob {blob(chunk)}\t{chunk_hash}.bin"])
    for name in (f"{day.day:02d}", f"{day.month:02d}", f"{day.year:04d}", "events"):
        node = tree([f"040000 tree {node}\t{name}"])
    root = tree(
        [
            f"100644 blob {blob(meta.encode())}\tmeta.json",
            *git(repo, "ls-tree", node).stdout.splitlines(),
        ]
    )
    env = {**os.environ, "GIT_AUTHOR_NAME": "grite", "GIT_AUTHOR_EMAIL": "grit@local",
           "GIT_COMMITTER_NAME": "grite", "GIT_COMMITTER_EMAIL": "grit@local"}  # fmt: skip
    args = ["git", "commit-tree", root, "-m", f"WAL: 1 events from {actor.hex()[:8]}"]
    if parent:
        args += ["-p", parent]
    commit = subprocess.run(args, cwd=repo, env=env, capture_output=True, check=True).stdout
    git(repo, "update-ref", "refs/grite/wal", commit.decode().strip())
    return event_id.hex()


def test_reads_what_a_0_5_3_teammate_wrote_last_writer_wins(grite: Grite, git_repo: Path) -> None:
    (git_repo / "app.py").write_text("def ours():\n    pass\n")
    git(git_repo, "add", "-A")
    grite.json(git_repo, "context", "index")
    grite.json(git_repo, "context", "set", "build", "make")
    mine = grite.json(git_repo, "context", "show", "app.py")
    teammate = bytes(range(0x40, 0x50))
    later = max(mine["updated_ts"], time.time_ns() // 10**6) + 60_000
    symbol = [["theirs", "function", 1, 2]]
    payload = ["app.py", "python", symbol, "1 functions", hashlib.sha256(b"x").digest()]
    _teammate_commit(git_repo, teammate, later, 13, _file_id("app.py"), payload)
    _teammate_commit(git_repo, teammate, later, 14, b"\xff" * 16, ["build", "cargo build"])
    _teammate_commit(git_repo, teammate, later, 14, b"\xff" * 16, ["lang", "rust"])
    # An older write of the teammate loses to ours (versions order by ts, actor, event id).
    _teammate_commit(
        git_repo,
        teammate,
        1,
        13,
        _file_id("lib.py"),
        ["lib.py", "python", [], "python file", bytes(32)],
    )
    assert_fsck_clean(git_repo)

    shown = grite.json(git_repo, "context", "show", "app.py")
    assert [s["name"] for s in shown["symbols"]] == ["theirs"]
    assert shown["actor"] == teammate.hex() and shown["updated_ts"] == later
    assert grite.json(git_repo, "context", "query", "ours")["count"] == 0
    assert grite.json(git_repo, "context", "query", "the")["matches"] == [
        {"symbol": "theirs", "path": "app.py"}
    ]
    assert grite.json(git_repo, "context", "show", "lib.py")["summary"] == "python file"
    assert grite.json(git_repo, "context", "project") == {
        "entries": [
            {"key": "build", "value": "cargo build", "updated_ts": later, "actor": teammate.hex()},
            {"key": "lang", "value": "rust", "updated_ts": later, "actor": teammate.hex()},
        ],
        "count": 2,
    }
    assert grite.json(git_repo, "context", "project", "lang")["value"] == "rust"
    # The pseudo-issues never show up as issues (0.5.3: "projections untouched").
    assert grite.json(git_repo, "issue", "list", "--state", "all")["issues"] == []


def test_paths_filters_and_files_that_are_not_indexed(
    grite: Grite, git_repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.py"
    outside.write_text("def secret_outside():\n    pass\n")
    (git_repo / "pkg").mkdir()
    (git_repo / "pkg" / "a.py").write_text("def alpha():\n    pass\n")
    (git_repo / "pkg" / "b.rs").write_text("fn beta() {}\n")
    (git_repo / "top.py").write_text("def top():\n    pass\n")
    (git_repo / "link.py").symlink_to(outside)
    git(git_repo, "add", "-A")
    only_rust = grite.json(git_repo, "context", "index", "--pattern", "*.rs")
    assert (only_rust["total_files"], only_rust["indexed"]) == (1, 1)
    in_pkg = grite.json(git_repo / "pkg", "context", "index", "--path", ".")
    # Pathspecs are relative to the working directory, like 0.5.3's `git ls-files <path>`;
    # recorded paths are relative to the top of the work tree.
    assert (in_pkg["total_files"], in_pkg["indexed"], in_pkg["unchanged"]) == (2, 1, 1)
    assert grite.json(git_repo / "pkg", "context", "show", "a.py")["path"] == "pkg/a.py"
    assert grite.json(git_repo / "pkg", "context", "show", "./a.py")["path"] == "pkg/a.py"
    everything = grite.json(git_repo, "context", "index")
    # A tracked symlink is never followed: the file it points to stays private.
    assert everything["unreadable"] == 1
    assert grite.json(git_repo, "context", "query", "secret")["count"] == 0
    code, err = grite.error(git_repo, "context", "show", "link.py")
    assert (code, err["code"]) == (3, "not_found") and "grite context index" in err["message"]
    code, err = grite.error(git_repo, "context", "project", "nope")
    assert (code, err["code"]) == (3, "not_found") and "grite context set" in err["message"]
    code, err = grite.error(git_repo, "context", "index", "--path", ":(bogus)x")
    assert (code, err["code"]) == (2, "invalid_args")


def test_a_retried_index_request_writes_its_events_once(
    git_repo: Path, isolated_env: dict[str, str]
) -> None:
    # The daemon retries a request with the same id and clock; so does this, in-process
    # (grite.ops.repo_handle: already-known events are not appended again).
    from grite.cli.app import run_invocation
    from grite.model.invocation import Invocation

    (git_repo / "a.py").write_text("def a():\n    pass\n")
    git(git_repo, "add", "-A")
    inv = Invocation(
        argv=["context", "index", "--json"], cwd=str(git_repo), env=dict(isolated_env),
        request_id=os.urandom(16), now_ms=time.time_ns() // 10**6,
    )  # fmt: skip
    first = run_invocation(inv)
    assert first.exit_code == 0, first
    head = wal_head(git_repo)
    # The retry arrives after the file was already indexed under this very request.
    again = run_invocation(inv)
    assert again.exit_code == 0, again
    assert wal_head(git_repo) == head and wal_commit_count(git_repo) == 1
    forced = run_invocation(
        Invocation(
            argv=["context", "index", "--force", "--json"],
            cwd=str(git_repo),
            env=dict(isolated_env),
            request_id=inv.request_id,
            now_ms=inv.now_ms,
        )  # fmt: skip
    )
    assert forced.exit_code == 0 and wal_commit_count(git_repo) == 1


def test_human_output(grite: Grite, git_repo: Path) -> None:
    (git_repo / "m.py").write_text("class Model:\n    def save(self):\n        pass\n")
    git(git_repo, "add", "-A")
    out = grite.run(git_repo, "context", "index", check=True).stdout
    assert out.startswith("Indexed 1 of 1 files (2 symbols)")
    assert grite.run(git_repo, "context", "query", "Mo", check=True).stdout == "Model  m.py\n"
    page = grite.run(git_repo, "context", "show", "m.py", check=True).stdout.splitlines()
    assert page[0] == "m.py (python): defines Model; 1 functions"
    assert page[2].split() == ["1-3", "class", "Model"]
    grite.run(git_repo, "context", "set", "owner", "team\x1b[31mred", check=True)
    assert (
        grite.run(git_repo, "context", "project", "owner", check=True).stdout
        == "team\\x1b[31mred\n"
    )
