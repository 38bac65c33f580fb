"""`grite daemon install` and `grite daemon uninstall`: render an InstallReport for humans or JSON.

These are plain functions returning `(exit status, stdout, stderr)`; the argh command layer
wires them in and writes the streams. They always run in-process (installing a service is not a
request for the daemon). Must not print, exit or read os.environ: grite.cli.service_install
does the work and grite.ipc.paths resolves paths.
"""

from __future__ import annotations

import msgspec

from grite.cli import envelope
from grite.cli.service_install import InstallReport, install, uninstall
from grite.model.errors import Environment

__all__ = ["daemon_install", "daemon_uninstall", "render_report"]

_ACTION_WORDS = {
    "write": ("would write", "wrote"),
    "unchanged": ("unchanged", "unchanged"),
    "remove": ("would remove", "removed"),
    "absent": ("absent", "absent"),
}


def daemon_install(*, dry_run: bool, json: bool, quiet: bool) -> tuple[int, str, str]:
    """Install the per-user socket-activated service (see grite-daemon(8)).

    Args:
        dry_run: print what would be written and run; change nothing.
        json: print the JSON envelope on stdout.
        quiet: print nothing on success.

    Returns:
        (exit status: 0, or 5 when nothing useful could be done; stdout; stderr)
    """
    return render_report(install(dry_run=dry_run), json=json, quiet=quiet)


def daemon_uninstall(*, dry_run: bool, json: bool, quiet: bool) -> tuple[int, str, str]:
    """Stop and remove the per-user service; arguments and result as for daemon_install."""
    return render_report(uninstall(dry_run=dry_run), json=json, quiet=quiet)


def render_report(report: InstallReport, *, json: bool, quiet: bool) -> tuple[int, str, str]:
    """Turn a report into the command's exit status and output streams."""
    if json:
        return report.exit_code, _render_json(report), ""
    if report.exit_code != 0:
        return report.exit_code, "", _render_text(report) + f"error: {report.summary}\n"
    if quiet:
        return 0, "", ""
    return 0, _render_text(report) + report.summary + "\n", ""


def _render_json(report: InstallReport) -> str:
    data = msgspec.to_builtins(report)
    if report.exit_code == 0:
        return envelope.encode(envelope.success(data))
    return envelope.encode(envelope.failure(Environment(report.summary, data)))


def _render_text(report: InstallReport) -> str:
    lines: list[str] = []
    for change in report.files:
        planned, done = _ACTION_WORDS[change.action]
        lines.append(f"{planned if report.dry_run else done} {change.path}")
        if change.content is not None:
            lines.extend(f"    {line}" for line in change.content.splitlines())
    for command in report.commands:
        shown = " ".join(command.argv)
        if not command.ran:
            lines.append(f"would run: {shown}")
        elif command.ok:
            lines.append(f"ran: {shown}")
        else:
            why = command.error or f"exit status {command.returncode}"
            lines.append(f"ran: {shown} ({why})")
    lines.extend(f"note: {note}" for note in report.notes)
    return "".join(line + "\n" for line in lines)
