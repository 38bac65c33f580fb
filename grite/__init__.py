"""grite: an issue tracker that lives in a git repository.

The top level stays tiny on purpose: the `grite` entry point imports this package before it
decides whether a daemon serves the command, so nothing heavy may load here.
"""

__version__ = "0.6.0"

__all__ = ["__version__"]
