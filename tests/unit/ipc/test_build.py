"""The build id: content hashes of a wheel install's RECORD, else stats of a source tree."""

from __future__ import annotations

import os
from pathlib import Path

import grite
from grite.ipc.build import compute_build_id


def _install(site: Path, record: str | None) -> Path:
    pkg = site / "grite"
    (pkg / "ipc").mkdir(parents=True)
    (pkg / "__init__.py").write_text("x = 1\n")
    (pkg / "ipc" / "wire.py").write_text("y = 2\n")
    if record is not None:
        info = site / f"grite-{grite.__version__}.dist-info"
        info.mkdir()
        (info / "RECORD").write_text(record)
    return pkg


RECORD = (
    "../../../bin/grite,sha256=AAA,187\n"
    "grite/__init__.py,sha256=BBB,6\n"
    "grite/ipc/wire.py,sha256=CCC,6\n"
    "grite/__pycache__/__init__.cpython-311.pyc,,\n"
)


def test_a_wheel_install_is_identified_by_its_recorded_content(tmp_path: Path) -> None:
    first = compute_build_id(str(_install(tmp_path / "a", RECORD)))
    # Another venv with the same wheel: another script path, same package content.
    same = compute_build_id(str(_install(tmp_path / "b", RECORD.replace("AAA", "ZZZ"))))
    # Compiled files come and go; they are not the build.
    pyc = compute_build_id(str(_install(tmp_path / "c", RECORD.replace(",,", ",x,1"))))
    upgraded = compute_build_id(str(_install(tmp_path / "d", RECORD.replace("CCC", "DDD"))))
    assert first == same == pyc != upgraded


def test_a_source_tree_is_identified_by_its_files(tmp_path: Path) -> None:
    pkg = _install(tmp_path / "src", None)
    before = compute_build_id(str(pkg))
    assert compute_build_id(str(pkg)) == before
    (pkg / "ipc" / "wire.py").write_text("y = 22\n")
    assert compute_build_id(str(pkg)) != before
    edited = compute_build_id(str(pkg))
    os.utime(pkg / "__init__.py", ns=(1, 1))
    assert compute_build_id(str(pkg)) != edited
