"""Attack 11, the smaller ones of the data boundary:

- a forged snapshot seeded the view of a `git clone --mirror` (issues the WAL never held);
- a deeply nested meta.json made `grite doctor` fail with RecursionError;
- a bad line in the remote's packed-refs was an internal error;
- successful in-process syncs printed dulwich `__del__` tracebacks;
- another user pre-creating `/tmp/grite-<uid>` (XDG_RUNTIME_DIR unset) silently disabled the
  daemon: grite now says so (`grite daemon status`, GRITE_DEBUG) and uses a private directory
  with an unpredictable name, recorded in the user's state directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from grite.model.events import IssueCreated
from grite.model.hashing import make_event
from grite.storage.snapshots import SnapshotStore
from tests.conftest import Grite, daemon_pids, git, make_repo, wal_head
from tests.hostile.conftest import Victim
from tests.wal_forge import forge_commit, set_ref


def test_a_forged_snapshot_never_seeds_a_mirror_clone(victim: Victim) -> None:
    v = victim
    titles = v.titles()
    head = wal_head(v.remote)
    assert head is not None
    forged = make_event(
        issue_id=os.urandom(16),
        actor=os.urandom(16),
        ts_unix_ms=1_700_000_000_000,
        kind=IssueCreated(title="forged issue", body="", labels=[]),
    )
    with SnapshotStore(str(v.remote)) as store:
        info = store.create(1_900_000_000_000, head, [forged])
    assert info is not None
    git(v.root, "clone", "-q", "--mirror", str(v.remote), str(v.root / "mirror.git"))
    # Commands run from inside the bare repository, in a directory with no `grite/` in it: at
    # the top (grite's data) or in refs/ (refs/grite), `python -m grite` would import that
    # directory as a namespace package instead of an editable install of grite.
    mirror = v.root / "mirror.git" / "objects"

    assert v.titles(repo=mirror) == titles  # replayed from the WAL, not seeded
    listed = v.ok("snapshot", "list", repo=mirror)["snapshots"]
    assert [(s["ref_name"], s["trusted"]) for s in listed] == [(info.ref, False)]
    assert "(not verified: unused)" in v.run("snapshot", "list", repo=mirror).stdout
    report = v.ok("doctor", "--fix", repo=mirror)
    check = next(c for c in report["checks"] if c["id"] == "snapshots")
    assert check["status"] == "warn" and "do not match the WAL" in check["message"]
    rebuilt = v.ok("rebuild", "--from-snapshot", repo=mirror)
    assert rebuilt["from_snapshot"] is None and v.titles(repo=mirror) == titles

    # A genuine snapshot made elsewhere is used once doctor --fix has compared it with the WAL.
    v.ok("snapshot", "create")
    v.ok("sync")
    git(mirror.parent, "fetch", "-q", "origin", "+refs/grite/*:refs/grite/*")
    report = v.ok("doctor", repo=mirror)
    check = next(c for c in report["checks"] if c["id"] == "snapshots")
    assert "1 snapshot made elsewhere match the WAL" in check["message"]
    report = v.ok("doctor", "--fix", repo=mirror)
    assert "trust-snapshots" in report["applied"]
    rebuilt = v.ok("rebuild", "--from-snapshot", repo=mirror)
    assert rebuilt["from_snapshot"] is not None and v.titles(repo=mirror) == titles


# Under meta.json's size cap (64 KiB) and far deeper than any recursive decoder allows.
NESTED = b'{"schema_version": 1, "x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"


def test_a_deeply_nested_meta_json_is_an_invalid_commit_not_a_crash(victim: Victim) -> None:
    v = victim
    head, titles = wal_head(v.repo), v.titles()
    bad = v.forge_on_remote(events=[], meta=NESTED)
    assert v.refused("sync")["details"]["commit"] == bad
    stored = forge_commit(v.repo, events=[], meta=NESTED)
    set_ref(v.repo, stored)
    report = v.ok("doctor")
    wal = next(c for c in report["checks"] if c["id"] == "wal")
    assert wal["status"] == "warn" and f"WAL commit {stored} is invalid" in wal["message"]
    assert "meta.json does not decode" in wal["message"]
    # The same inside a lock ref (as a mirror clone or a fetch brings it): ignored.
    with Repo(str(v.repo / ".git")) as r:
        blob = Blob.from_string(b'{"owner": "x", "nonce": ' + b"[" * 30_000 + b"]" * 30_000 + b"}")
        tree = Tree()
        tree.add(b"lock.json", 0o100644, blob.id)
        commit = Commit()
        commit.tree = tree.id
        commit.author = commit.committer = b"m <m@example.com>"
        commit.author_time = commit.commit_time = 1_700_000_000
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = b"Lock"
        for obj in (blob, tree, commit):
            r.object_store.add_object(obj)
        r.refs[b"refs/grite/locks/0123456789abcdef"] = commit.id
    assert v.ok("lock", "status")["locks"] == []
    v.assert_unharmed(stored, titles)
    assert head is not None


def test_a_bad_line_in_the_remote_packed_refs_is_a_clear_error(victim: Victim) -> None:
    v = victim
    head, titles = wal_head(v.repo), v.titles()
    git(v.remote, "pack-refs", "--all")
    with open(v.remote / "packed-refs", "a") as f:
        f.write("this is not a ref line\n")
    error = v.refused("sync")
    assert "remote 'origin'" in error["message"] and "cannot read" in error["message"]
    assert "PackedRefsException" in error["message"]
    v.assert_unharmed(head, titles)


def test_in_process_syncs_print_nothing_on_stderr(victim: Victim) -> None:
    v = victim
    other = v.root / "other"
    git(v.root, "clone", "-q", str(v.remote), str(other))
    env = {**v.grite.env, "GRITE_NO_DAEMON": "1"}
    # Set up first: a fresh clone's first sync says that it set grite up (on stderr).
    subprocess.run(
        [sys.executable, "-m", "grite", "init", "--no-agents-md"],
        cwd=other, env=env, capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    for repo in (other, v.repo, other):
        proc = subprocess.run(
            [sys.executable, "-m", "grite", "sync"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    # The library, used in-process by a script that never closes its client.
    script = textwrap.dedent(
        f"""
        import grite
        from grite.model.requests_sync import SyncArgs
        for repo in ({str(other)!r}, {str(v.repo)!r}):
            client = grite.Client(repo, daemon=False)
            client.call(SyncArgs())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


SQUATTER = "grite-hostile-squatter"


def test_another_user_taking_the_runtime_directory_does_not_disable_the_daemon(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    assert os.geteuid() == 0, "a second user needs root (CI runs as root)"
    runuser = shutil.which("runuser")
    assert runuser, ".ci/run installs util-linux"
    if subprocess.run(["id", SQUATTER], capture_output=True, check=False).returncode != 0:
        subprocess.run(["useradd", "--no-create-home", SQUATTER], check=False)  # may race
    squatter_uid = int(subprocess.run(["id", "-u", SQUATTER], capture_output=True, text=True,
                                      check=True).stdout)  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="gsq", dir="/tmp"))
    tmp.chmod(0o1777)  # like /tmp: anyone may create names in it
    env = {k: v for k, v in isolated_env.items() if k != "XDG_RUNTIME_DIR"}
    env["TMPDIR"] = str(tmp)
    taken = tmp / f"grite-{os.getuid()}"
    try:
        # The squatter, a real second user, creates our runtime directory first.
        subprocess.run([runuser, "-u", SQUATTER, "--", "mkdir", "-m", "0777", str(taken)],
                       check=True, timeout=30)  # fmt: skip
        assert taken.stat().st_uid == squatter_uid
        grite = Grite(env, "daemon")  # strict: the daemon must serve
        repo = make_repo(tmp_path / "repo")
        proc = subprocess.run(
            [sys.executable, "-m", "grite", "issue", "create", "--title", "served", "--json"],
            cwd=repo, env=dict(grite.env, GRITE_DEBUG="1"), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"{taken} is owned by uid {squatter_uid}" in proc.stderr, proc.stderr
        assert "daemon not used" not in proc.stderr
        assert [i["title"] for i in grite.json(repo, "issue", "list")["issues"]] == ["served"]

        status = grite.run(repo, "daemon", "status")
        assert "grite daemon is running" in status.stdout, status.stdout
        assert f"runtime dir:  {taken} is owned by uid {squatter_uid}" in status.stdout
        info = json.loads(grite.run(repo, "daemon", "status", "--json").stdout)["data"]
        assert info["running"] and f"owned by uid {squatter_uid}" in info["runtime_dir_note"]
        private = Path(info["socket"]).parent
        assert private.parent == tmp and private.name.startswith(f"grite-{os.getuid()}-")
        st = private.lstat()
        assert st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700
        record = Path(env["XDG_STATE_HOME"]) / "grite" / "runtime-dir"
        assert record.read_text().strip() == str(private)
        assert os.listdir(taken) == []  # nothing of ours went into the squatter's directory
    finally:
        for pid in daemon_pids(tmp):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)
