"""What a person at a terminal sees (issue 16, item 8), checked on a real pseudo-terminal:
colour (NO_COLOR, --color), relative times in tables, the newest issues first, a pager for
long output, $EDITOR for a body, a prompt when `--body -` reads the terminal. Each runs
in-process and through the daemon, which renders for the client's terminal."""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

from tests.conftest import GRITE, Grite


def on_pty(
    grite: Grite,
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    rows: int = 40,
    cols: int = 100,
    typed: bytes = b"",
) -> tuple[int, str]:
    """Run grite with stdin, stdout and stderr on a new pseudo-terminal of rows x cols;
    `typed` is sent as keystrokes. Returns (exit status, everything the terminal showed)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(
        [*GRITE, *args],
        cwd=cwd,
        env={**grite.env, "TERM": "xterm", **(env or {})},
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    if typed:
        time.sleep(0.5)  # let it reach the read (no prompt to wait for in every case)
        os.write(master, typed)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError as exc:  # EIO: the last writer closed the terminal
            assert exc.errno == errno.EIO
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    code = proc.wait(30)
    if grite.mode == "daemon":
        assert b"GRITE_DAEMON=require" not in out, out
    return code, out.decode("utf-8", "replace").replace("\r\n", "\n")


def _three(grite: Grite, repo: Path) -> list[str]:
    return [
        grite.json(repo, "issue", "create", "--title", t, "--label", "bug")["issue_id"]
        for t in ("old one", "middle one", "new one")
    ]


def test_tables_are_coloured_relative_and_newest_first_on_a_terminal(
    grite: Grite, git_repo: Path
) -> None:
    ids = _three(grite, git_repo)
    code, out = on_pty(grite, git_repo, "issue", "list")
    assert code == 0, out
    assert "\x1b[1mID" in out and f"\x1b[33m{ids[2][:12]}\x1b[0m" in out
    assert "\x1b[32mopen\x1b[0m" in out and "\x1b[36mbug\x1b[0m" in out
    assert "just now" in out and "UPDATED" in out
    titles = [t for t in ("new one", "middle one", "old one") if t in out]
    assert [out.index(t) for t in titles] == sorted(out.index(t) for t in titles)
    # NO_COLOR and --color never: no escape at all; relative times stay.
    for extra, env in (((), {"NO_COLOR": "1"}), (("--color", "never"), {})):
        code, plain = on_pty(grite, git_repo, *extra, "issue", "list", env=env)
        assert code == 0 and "\x1b[" not in plain and "just now" in plain
    # Piped: plain, absolute times; --color always colours even then.
    piped = grite.run(git_repo, "issue", "list", check=True).stdout
    assert "\x1b[" not in piped and "just now" not in piped
    assert "\x1b[33m" in grite.run(git_repo, "--color", "always", "issue", "list").stdout
    # `show` keeps absolute times.
    code, shown = on_pty(grite, git_repo, "issue", "show", ids[0])
    assert code == 0 and "\x1b[1mold one\x1b[0m" in shown and " · opened 20" in shown


def test_long_output_goes_through_the_pager_on_a_terminal_only(
    grite: Grite, git_repo: Path, tmp_path: Path
) -> None:
    for i in range(12):
        grite.json(git_repo, "issue", "create", "--title", f"issue {i}")
    pager = tmp_path / "pager.sh"
    pager.write_text('#!/bin/sh\necho "PAGER LESS=$LESS"; cat\n')
    pager.chmod(0o755)
    env = {"GRITE_PAGER": str(pager)}
    code, out = on_pty(grite, git_repo, "issue", "list", env=env, rows=10)
    assert code == 0 and "PAGER LESS=FRX" in out and "issue 11" in out
    code, out = on_pty(grite, git_repo, "issue", "list", env=env, rows=40)
    assert code == 0 and "PAGER" not in out  # it fits: no pager
    piped = grite.run(git_repo, "issue", "list")
    assert "PAGER" not in piped.stdout


def test_editor_writes_the_body_in_the_client_and_body_dash_prompts(
    grite: Grite, git_repo: Path, tmp_path: Path
) -> None:
    editor = tmp_path / "editor.sh"
    # Writes above the scissors line and keeps what grite put below it.
    editor.write_text(
        '#!/bin/sh\n{ printf "# Heading kept\\nwritten in pid %s\\n" "$$"; cat "$1"; } > "$1.new"'
        ' && mv "$1.new" "$1"\n'
    )
    editor.chmod(0o755)
    code, out = on_pty(
        grite, git_repo, "issue", "create", "--title", "edited", env={"EDITOR": str(editor)}
    )
    assert code == 0, out
    issue = grite.json(git_repo, "issue", "list")["issues"][0]
    body = grite.json(git_repo, "issue", "show", issue["issue_id"])["body"]
    assert body.startswith("# Heading kept\nwritten in pid ") and ">8" not in body
    # An empty comment is refused; nothing is written.
    empty = tmp_path / "empty.sh"
    empty.write_text('#!/bin/sh\n: > "$1"\n')
    empty.chmod(0o755)
    code, out = on_pty(
        grite, git_repo, "issue", "comment", issue["issue_id"], env={"VISUAL": str(empty)}
    )
    assert code == 2 and "the comment is empty; nothing was written" in out
    # `--body -` on a terminal says what it waits for.
    code, out = on_pty(
        grite, git_repo, "issue", "comment", issue["issue_id"], "--body", "-",
        typed=b"typed at the terminal\n\x04",
    )  # fmt: skip
    assert code == 0 and "reading standard input; end with Ctrl-D" in out, out
    comments = grite.json(git_repo, "issue", "show", issue["issue_id"])["comments"]
    assert comments[-1]["body"] == "typed at the terminal\n"


def test_update_edits_the_current_body(grite: Grite, git_repo: Path, tmp_path: Path) -> None:
    issue = grite.json(git_repo, "issue", "create", "--title", "t", "--body", "old text")[
        "issue_id"
    ]
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nsed -i "s/old text/new text/" "$1"\n')
    editor.chmod(0o755)
    code, out = on_pty(grite, git_repo, "issue", "update", issue[:8], env={"EDITOR": str(editor)})
    assert code == 0, out
    assert grite.json(git_repo, "issue", "show", issue)["body"] == "new text"
    code, out = on_pty(grite, git_repo, "issue", "update", issue[:8], env={"EDITOR": "true"})
    assert code == 2 and "the body is unchanged; nothing was written" in out
