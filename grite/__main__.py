"""`python -m grite` runs the CLI entry point."""

from grite.cli.entry import console_main

console_main()
