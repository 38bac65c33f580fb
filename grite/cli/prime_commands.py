"""Command area: `grite prime` (see grite/cli/app.py for how areas plug in).

`grite prime` prints the Markdown document (grite.ops.prime); `--hook` prints it wrapped as the
JSON a session-start hook answers with, `{"hookSpecificOutput": {"hookEventName":
"SessionStart", "additionalContext": ...}}`, which Claude Code
(https://code.claude.com/docs/en/hooks#sessionstart), Codex
(https://developers.openai.com/codex/hooks) and Gemini CLI
(https://geminicli.com/docs/hooks/reference/) all read; `grite setup` installs that hook.
`--json` prints the envelope with the document and the data it was made from.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import argh

from grite.cli.commands import leaves
from grite.model.requests_prime import DEFAULT_MAX_TOKENS, PrimeArgs, PrimeResult

__all__ = ["RENDERERS", "register"]


@argh.named("prime")
@argh.arg(
    "--max-tokens",
    type=int,
    help=f"budget of the document in estimated tokens, chars/4 (default {DEFAULT_MAX_TOKENS})",
)
@argh.arg("--hook", help="print it as a session-start hook's JSON (Claude Code, Codex, Gemini)")
@argh.arg("--no-record", help="do not move your last-prime mark (what 'changed since' uses)")
def prime(
    *, max_tokens: int = DEFAULT_MAX_TOKENS, hook: bool = False, no_record: bool = False
) -> PrimeArgs:
    """What an agent needs at session start: commands, ready queue, claims, locks, changes."""
    return PrimeArgs(
        max_tokens=max_tokens, record=not no_record, format="hook" if hook else "markdown"
    )


def _render(_renderer: Any, result: PrimeResult) -> str:
    if result.format == "hook":
        answer = {
            "hookSpecificOutput": {
                "hookEventName": "SessionStart",
                "additionalContext": result.markdown,
            }
        }
        return json.dumps(answer) + "\n"
    return result.markdown


RENDERERS: dict[type, Callable[[Any, Any], str]] = {PrimeResult: _render}


def register(
    top: argparse._SubParsersAction,  # type: ignore[type-arg]
    issue: argparse._SubParsersAction,  # type: ignore[type-arg]
    parents: list[argparse.ArgumentParser],
) -> None:
    """Add `grite prime`."""
    leaves(top, [prime], parents)
