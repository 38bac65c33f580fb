"""Runtime paths: resolution order, directory security checks, socket path length."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from grite.ipc import paths
from grite.model.errors import Environment


def _private(p: Path) -> Path:
    p.mkdir(mode=0o700, exist_ok=True)
    os.chmod(p, 0o700)
    return p


def test_xdg_runtime_dir_is_used_when_private(tmp_path: Path) -> None:
    rt = _private(tmp_path / "rt")
    rp = paths.runtime_paths({"XDG_RUNTIME_DIR": str(rt), "HOME": str(tmp_path)})
    assert rp.socket == str(rt / "grite" / "daemon.sock")
    assert rp.lock_file == str(rt / "grite" / "daemon.lock")
    assert rp.log_file == str(tmp_path / ".local" / "state" / "grite" / "daemon.log")


def test_shared_xdg_runtime_dir_falls_back_to_tmpdir(tmp_path: Path) -> None:
    rt = tmp_path / "rt"
    rt.mkdir()
    os.chmod(rt, 0o755)
    rp = paths.runtime_paths({"XDG_RUNTIME_DIR": str(rt), "TMPDIR": str(tmp_path)})
    assert rp.runtime_dir == str(tmp_path / f"grite-{os.getuid()}")


def test_socket_override_moves_every_runtime_file(tmp_path: Path) -> None:
    rp = paths.runtime_paths({"GRITE_DAEMON_SOCKET": str(tmp_path / "x.sock")})
    assert rp.socket == str(tmp_path / "x.sock")
    assert rp.pid_file == str(tmp_path / "daemon.pid")


def test_ensure_creates_a_0700_directory(tmp_path: Path) -> None:
    rp = paths.runtime_paths({"TMPDIR": str(tmp_path)})
    old = os.umask(0o022)
    try:
        paths.ensure_runtime_dir(rp)
    finally:
        os.umask(old)
    assert os.stat(rp.runtime_dir).st_mode & 0o777 == 0o700


def test_ensure_refuses_world_writable_directory(tmp_path: Path) -> None:
    rp = paths.runtime_paths({"TMPDIR": str(tmp_path)})
    os.mkdir(rp.runtime_dir)
    os.chmod(rp.runtime_dir, 0o777)
    with pytest.raises(Environment, match="chmod 700"):
        paths.ensure_runtime_dir(rp)


def test_ensure_refuses_symlinked_directory(tmp_path: Path) -> None:
    target = _private(tmp_path / "elsewhere")
    rp = paths.runtime_paths({"TMPDIR": str(tmp_path)})
    os.symlink(target, rp.runtime_dir)
    with pytest.raises(Environment, match="symlink"):
        paths.ensure_runtime_dir(rp)


def test_ensure_refuses_socket_path_over_the_limit(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    rp = paths.runtime_paths({"GRITE_DAEMON_SOCKET": str(deep / "daemon.sock")})
    with pytest.raises(Environment, match="GRITE_DAEMON_SOCKET"):
        paths.ensure_runtime_dir(rp)


def test_child_env_drops_activation_and_git_variables() -> None:
    env = paths.daemon_child_env(
        {"PATH": "/bin", "LISTEN_FDS": "1", "NOTIFY_SOCKET": "x", "GIT_DIR": "/r", "GRITE_X": "1"}
    )
    assert env == {"PATH": "/bin", "GRITE_X": "1"}
