"""Which grite is this: the build id and the installation, as both ends of a hello give them.

The build id hashes the installed grite source (a wheel install's RECORD, which names every file
with the sha256 of its content; or, for a source tree, every .py file's relative path, size and
mtime), the Python version and the protocol version: two processes with the same id run the
same code. The installation is the directory the grite package was loaded from; a
changed build in the same installation is an upgrade (the current build retires the old
daemon), a different installation is another build that keeps a daemon of its own (see
grite.ipc.transport). Standard library only, and cheap: every `grite` command computes both.
"""

from __future__ import annotations

import os
import sys

__all__ = ["BUILD_ID_LEN", "PROTOCOL_VERSION", "build_id", "compute_build_id", "install_dir"]

PROTOCOL_VERSION = 1
BUILD_ID_LEN = 16

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CACHE: list[str] = []


def install_dir() -> str:
    """The directory this grite package was loaded from (its installation)."""
    return _ROOT


def _record(root: str) -> bytes | None:
    """The installer's RECORD of this grite (a wheel install), or None (a source tree)."""
    top = sys.modules.get("grite")  # the package is imported before any of its modules
    version = getattr(top, "__version__", None)
    if not isinstance(version, str):
        return None
    path = os.path.join(os.path.dirname(root), f"grite-{version}.dist-info", "RECORD")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def compute_build_id(root: str = _ROOT) -> str:
    """Hash the grite source under `root` with the Python and protocol versions.

    A wheel install is hashed from its RECORD's lines for the package (each names a file and
    the sha256 of its content, and an upgrade rewrites it): one read. A source tree (an
    editable install, a checkout on PYTHONPATH) is hashed from every .py file's relative
    path, size and mtime: stats, no reads.

    Returns:
        BUILD_ID_LEN hex characters.
    """
    # blake2b from the builtin module: hashlib would pull in OpenSSL (~2 ms on the hot path).
    from _blake2 import blake2b

    record = _record(root)
    entries: list[str] = []
    if record is not None:
        for line in record.decode("utf-8", "replace").splitlines():
            if line.startswith("grite/") and "/__pycache__/" not in line:
                entries.append(line)
    else:
        entries = _scan(root)
    entries.sort()
    entries.append(f"py{sys.version_info[0]}.{sys.version_info[1]}")
    entries.append(f"proto{PROTOCOL_VERSION}")
    digest = blake2b("\n".join(entries).encode(), digest_size=BUILD_ID_LEN // 2)
    return digest.hexdigest()


def _scan(root: str) -> list[str]:
    cut = len(root) + 1
    entries: list[str] = []
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                name = entry.name
                if name.endswith(".py"):
                    st = entry.stat()
                    entries.append(f"{entry.path[cut:]}\0{st.st_size}\0{st.st_mtime_ns}")
                elif name != "__pycache__" and entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return entries


def build_id() -> str:
    """The build id of this process, computed on first use and then kept for its life."""
    if not _CACHE:
        _CACHE.append(compute_build_id())
    return _CACHE[0]
