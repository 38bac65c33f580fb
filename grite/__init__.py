"""grite: an issue tracker that lives in a git repository.

The top level stays tiny on purpose: the `grite` entry point imports this package before it
decides whether a daemon serves the command, so nothing may load here (not even typing or
importlib: tests/system/test_lean_client.py counts every module a warm command imports).
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from grite.client import Client

__version__ = "0.6.0"

__all__ = ["Client", "__version__"]


def __getattr__(name: str) -> object:
    # `grite.Client` loads grite.client on first use, so `import grite` (which the CLI entry
    # does first) stays cheap. import_module rather than an import statement: grite.client
    # reaches grite.cli.app, which imports this package, and that is only a cycle on paper.
    if name == "Client":
        import importlib

        return importlib.import_module("grite.client").Client
    raise AttributeError(f"module 'grite' has no attribute {name!r}")
