"""Command area: agent (see grite/cli/app.py for how areas plug in).

An area module provides `register(top, issue, parents)`, which adds its argh commands to the
top-level and `issue` subparsers; `OPERATIONS`, mapping each args Struct it builds to the op
function that runs it; and `RENDERERS`, mapping result Structs to human text.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["OPERATIONS", "RENDERERS", "register"]

OPERATIONS: dict[type, Callable[[Any, Any], Any]] = {}
RENDERERS: dict[type, Callable[[Any, Any], str]] = {}


def register(
    top: argparse._SubParsersAction,  # type: ignore[type-arg]
    issue: argparse._SubParsersAction,  # type: ignore[type-arg]
    parents: list[argparse.ArgumentParser],
) -> None:
    """Add this area's commands (none yet)."""
