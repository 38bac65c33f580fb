"""`python -m grite.daemon` runs grite-daemon (the spawner uses this, same interpreter)."""

from grite.daemon.main import console_main

console_main()
