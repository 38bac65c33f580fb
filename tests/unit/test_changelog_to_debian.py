"""packaging/changelog_to_debian.py: CHANGELOG.md (Keep a Changelog) to debian/changelog, and
PEP 440 versions to versions dpkg orders the same way (checked with dpkg itself)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "changelog_to_debian", ROOT / "packaging" / "changelog_to_debian.py"
)
assert _spec is not None and _spec.loader is not None
tool = importlib.util.module_from_spec(_spec)
sys.modules["changelog_to_debian"] = tool
_spec.loader.exec_module(tool)

MAINTAINER = "grite maintainers <m@example.org>"
DATE = "Fri, 27 Nov 2026 14:26:07 +0000"
CHANGELOG = """# Changelog

Intro text that is not a release.

## [Unreleased]

### Added
- A new `thing`, described at length so that the line has to be wrapped somewhere before
  the eightieth column, see [the docs](https://example.org/docs).

### Fixed
- **Bold** fix.

## [0.6.0] - 2026-11-20

### Added
- First release.
"""


def render(version: str, text: str = CHANGELOG) -> str:
    return str(
        tool.render(
            tool.parse_changelog(text),
            package="grite",
            version=version,
            maintainer=MAINTAINER,
            date=DATE,
        )
    )


def test_unreleased_changes_become_the_entry_of_the_version_being_built() -> None:
    out = render("0.7.0")
    assert out.startswith(
        "grite (0.7.0) UNRELEASED; urgency=medium\n\n  Added:\n  * A new `thing`,"
    )
    assert "(https://example.org/docs)." in out and "[the docs]" not in out
    assert "  Fixed:\n  * Bold fix.\n" in out
    assert f" -- {MAINTAINER}  {DATE}\n" in out
    assert "grite (0.6.0) unstable; urgency=medium\n\n  Added:\n  * First release.\n" in out
    assert f" -- {MAINTAINER}  Fri, 20 Nov 2026 00:00:00 +0000\n" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_output_is_what_dpkg_parses(tmp_path: Path) -> None:
    if shutil.which("dpkg-parsechangelog") is None:
        pytest.fail("dpkg-parsechangelog is missing: install dpkg-dev (CI does, see .ci/run)")
    path = tmp_path / "changelog"
    path.write_text(render("0.7.0rc1"))
    fields = subprocess.run(
        ["dpkg-parsechangelog", "-l", str(path), "-S", "Version"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert fields.stdout.strip() == "0.7.0~rc1"
    every = subprocess.run(
        ["dpkg-parsechangelog", "-l", str(path), "--all", "--format", "rfc822"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    versions = [
        line.split(": ")[1] for line in every.stdout.splitlines() if line.startswith("Version:")
    ]
    assert versions == ["0.7.0~rc1", "0.6.0"]


def test_mismatches_are_refused_with_the_remedy() -> None:
    with pytest.raises(ValueError, match="bump the version in pyproject.toml"):
        render("0.6.0")  # unreleased changes, but 0.6.0 is already released
    released_only = CHANGELOG.replace(
        "## [Unreleased]", "## [Unreleased]\n\n## [0.6.1] - 2026-11-25"
    )
    assert render("0.6.1", released_only.split("### Added", 1)[0] + "## [0.6.1] - 2026-11-25\n")
    with pytest.raises(ValueError, match=r"add a `## \[0.9.0\] - YYYY-MM-DD` section"):
        render("0.9.0", "## [0.6.0] - 2026-11-20\n- x\n")
    with pytest.raises(ValueError, match="has no release date"):
        render("0.6.0", "## [0.6.0]\n- x\n")


@pytest.mark.parametrize(
    "versions",
    [
        ["0.7.0.dev1", "0.7.0a1", "0.7.0b2", "0.7.0rc1", "0.7.0", "0.7.0+local1", "0.7.0.post1"],
        ["1.0.dev0", "1.0rc1.dev1", "1.0rc1", "1.0", "1.0.post1.dev1", "1.0.post1"],
    ],
)
def test_dpkg_orders_mapped_versions_as_pep_440_does(versions: list[str]) -> None:
    mapped = [tool.debian_version(v) for v in versions]
    for lower, higher in zip(mapped, mapped[1:], strict=False):
        ordered = subprocess.run(["dpkg", "--compare-versions", lower, "lt", higher], check=False)
        assert ordered.returncode == 0, f"dpkg does not order {lower} < {higher}"
