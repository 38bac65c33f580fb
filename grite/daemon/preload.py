"""Import, as soon as the daemon serves, every module it may need later.

A daemon runs for minutes or hours while its files can be replaced under it: `pip install -U`,
`apt upgrade` or a package removal rewrite or delete them one by one. A module first imported
after that would come from the new (or a half-written) tree and meet the old modules already
in memory. So the daemon imports all of grite, and the few modules grite or its libraries load
lazily, in a thread right after it starts serving (main.py; not before, so that the first
command after a socket activation does not wait for it); an upgrade then only makes it retire
(see service.StopReason.UPGRADED) and the next daemon starts from the new files.

Only the daemon calls this: the `grite` client must stay lean. Imports only the standard
library (the modules it loads are found by walking the package directory, as
grite.ipc.protocol.compute_build_id does).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

__all__ = ["LAZY_IMPORTS", "preload_modules"]

# The directory of the grite package this module belongs to.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Modules imported inside functions, by grite (storage/sync.py: dulwich.client for http remotes;
# cli/render.py: zoneinfo for TZ) or by its libraries on first use (dulwich's http transport:
# urllib3; encodings for IDNA host names).
LAZY_IMPORTS = ("dulwich.client", "urllib3", "zoneinfo", "encodings.idna")


def preload_modules() -> int:
    """Import every grite module (except `__main__` scripts) and LAZY_IMPORTS.

    Returns:
        How many modules were imported (or already loaded).

    Raises:
        ImportError: a module is missing or broken (e.g. an upgrade is half-way through);
            the daemon then exits and its service manager or the next client starts it again.
        SyntaxError: a source file is half-written.
    """
    names = [
        info.name
        for info in pkgutil.walk_packages([_PACKAGE_DIR], prefix="grite.")
        if not info.name.endswith(".__main__")
    ]
    names += [name for name in LAZY_IMPORTS if name not in sys.modules]
    for name in names:
        importlib.import_module(name)
    return len(names)
