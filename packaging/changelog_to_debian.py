#!/usr/bin/env python3
"""Write debian/changelog from CHANGELOG.md (Keep a Changelog) for packaging/build-deb.

Each released section `## [X] - YYYY-MM-DD` becomes one entry, newest first, distribution
`unstable`. `## [Unreleased]` becomes the entry of the version being built (pyproject.toml's),
distribution `UNRELEASED`, dated by --date (build-deb passes the last commit's date, so two
builds of one commit are identical). The version is mapped from PEP 440 to Debian ordering:
pre-releases and dev releases sort before the release (`0.7.0rc1` -> `0.7.0~rc1`).

Refuses, with the remedy, a version that has neither a section nor unreleased changes, and
unreleased changes on a version that CHANGELOG.md already records as released (bump the
version first). Standard library only: it runs under the build machine's python3.

Usage: changelog_to_debian.py CHANGELOG.md --package grite --version 0.6.0
       --maintainer "Name <email>" --date "Fri, 27 Nov 2026 14:26:07 +0000"
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime

__all__ = ["Section", "debian_version", "parse_changelog", "render", "main"]

_SECTION = re.compile(r"^## \[(?P<name>[^\]]+)\](?:\s*-\s*(?P<date>\d{4}-\d{2}-\d{2}))?\s*$")
_SUBSECTION = re.compile(r"^### (?P<name>.+?)\s*$")
_PEP440 = re.compile(
    r"^(?P<release>\d+(?:\.\d+)*)"
    r"(?:[-_.]?(?P<pre>a|b|rc|alpha|beta|c)[-_.]?(?P<pre_n>\d*))?"
    r"(?:[-_.]?(?P<post>post|rev|r)[-_.]?(?P<post_n>\d*))?"
    r"(?:[-_.]?(?P<dev>dev)[-_.]?(?P<dev_n>\d*))?"
    r"(?:\+(?P<local>[a-z0-9.]+))?$",
    re.IGNORECASE,
)
_WIDTH = 78


@dataclass
class Section:
    """One `## [...]` section: its name, release date and items grouped by `###` heading."""

    name: str
    date: str | None
    groups: list[tuple[str, list[str]]] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not any(items for _, items in self.groups)


def debian_version(version: str) -> str:
    """Map a PEP 440 version to one that dpkg orders the same way.

    Raises:
        ValueError: the version is not PEP 440.
    """
    match = _PEP440.match(version.strip())
    if match is None:
        raise ValueError(f"{version!r} is not a PEP 440 version")
    out = match["release"]
    if match["pre"]:
        pre = {"alpha": "a", "beta": "b", "c": "rc"}.get(match["pre"].lower(), match["pre"].lower())
        out += f"~{pre}{match['pre_n'] or '0'}"
    if match["post"]:
        out += f".post{match['post_n'] or '0'}"
    if match["dev"]:
        # A dev release precedes everything else of its version: 1.0.dev1 < 1.0a1 < 1.0.
        out += (
            f"~~dev{match['dev_n'] or '0'}" if not match["pre"] else f"~dev{match['dev_n'] or '0'}"
        )
    if match["local"]:
        out += f"+{match['local'].lower()}"
    return out


def _plain(text: str) -> str:
    """Markdown inline syntax a terminal reader does not need: links and emphasis."""
    text = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"\1 (\2)", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"\1", text)


def parse_changelog(text: str) -> list[Section]:
    """The `## [...]` sections of a Keep a Changelog file, in file order."""
    sections: list[Section] = []
    item: list[str] | None = None
    for line in text.splitlines():
        if m := _SECTION.match(line):
            sections.append(Section(m["name"].strip(), m["date"]))
            item = None
        elif not sections:
            continue
        elif m := _SUBSECTION.match(line):
            sections[-1].groups.append((m["name"], []))
            item = None
        elif line.startswith("- "):
            if not sections[-1].groups:
                sections[-1].groups.append(("", []))
            sections[-1].groups[-1][1].append(line[2:].strip())
            item = sections[-1].groups[-1][1]
        elif line.startswith("  ") and line.strip() and item is not None:
            item[-1] += " " + line.strip()
        elif not line.strip():
            item = None
    return sections


def _entry(package: str, version: str, dist: str, section: Section, trailer: str) -> str:
    lines = [f"{package} ({version}) {dist}; urgency=medium", ""]
    for heading, items in section.groups:
        if not items:
            continue
        if heading:
            lines.append(f"  {heading}:")
        for item in items:
            lines += textwrap.wrap(
                _plain(item),
                _WIDTH,
                initial_indent="  * ",
                subsequent_indent="    ",
                break_on_hyphens=False,
                break_long_words=False,
            )
    lines += ["", f" -- {trailer}", ""]
    return "\n".join(lines)


def render(
    sections: list[Section], *, package: str, version: str, maintainer: str, date: str
) -> str:
    """The debian/changelog text.

    Raises:
        ValueError: CHANGELOG.md and the version disagree (see the module docstring).
    """
    released = [s for s in sections if s.name.lower() != "unreleased"]
    unreleased = next((s for s in sections if s.name.lower() == "unreleased"), None)
    released_names = {s.name for s in released}
    entries: list[str] = []
    if unreleased is not None and not unreleased.is_empty():
        if version in released_names:
            raise ValueError(
                f"CHANGELOG.md has unreleased changes, but version {version} is already "
                "released there; bump the version in pyproject.toml (and grite/__init__.py) "
                "before building a package"
            )
        entries.append(
            _entry(
                package, debian_version(version), "UNRELEASED", unreleased, f"{maintainer}  {date}"
            )
        )
    elif version not in released_names:
        raise ValueError(
            f"CHANGELOG.md has no section for version {version} and no unreleased changes; "
            f"add a `## [{version}] - YYYY-MM-DD` section"
        )
    for section in released:
        if section.date is None:
            raise ValueError(
                f"CHANGELOG.md section [{section.name}] has no release date; write it as "
                f"`## [{section.name}] - YYYY-MM-DD`"
            )
        when = datetime.strptime(section.date, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        trailer = f"{maintainer}  {format_datetime(when)}"
        entries.append(_entry(package, debian_version(section.name), "unstable", section, trailer))
    return "\n".join(entries)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("changelog", help="CHANGELOG.md")
    parser.add_argument("--package", required=True)
    parser.add_argument("--version", required=True, help="the PEP 440 version being built")
    parser.add_argument("--maintainer", required=True, help='"Name <email>"')
    parser.add_argument("--date", required=True, help="RFC 2822 date of unreleased changes")
    args = parser.parse_args(argv)
    with open(args.changelog, encoding="utf-8") as f:
        sections = parse_changelog(f.read())
    try:
        text = render(
            sections,
            package=args.package,
            version=args.version,
            maintainer=args.maintainer,
            date=args.date,
        )
    except ValueError as exc:
        print(f"changelog_to_debian: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
