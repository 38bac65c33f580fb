"""Tell systemd about the daemon's state: sd_notify(3) `READY=1`, `STATUS=`, `STOPPING=1`.

Owns the notification side of systemd integration. The address comes from `NOTIFY_SOCKET`
(a filesystem path starting with "/" or a Linux abstract name starting with "@"); messages go
through `systemd.daemon.notify` when systemd-python is installed and the address is the
environment's, else through a datagram sent in pure Python. When there is no address every
call is a cheap no-op, so the daemon calls these unconditionally in every activation mode.

Sending never blocks and never raises: systemd's own advice is to ignore the result. This
module is allowed to read `os.environ` (only `NOTIFY_SOCKET`). Of grite it imports only
activation's loader for systemd-python, so both paths see the same module.
"""

from __future__ import annotations

import logging
import os
import socket

from grite.daemon.activation import import_systemd_daemon

__all__ = ["Notifier"]

_log = logging.getLogger(__name__)


# Loaded once; the pure-Python sender below covers its absence.
_sd_daemon = import_systemd_daemon()


class Notifier:
    """Sends sd_notify messages to one address for the life of the daemon.

    Args:
        address: the `NOTIFY_SOCKET` value to use; None reads it from the environment.
        use_systemd_python: None uses systemd-python when installed (and `address` is the
            environment's); False forces the pure-Python sender; True requires systemd-python.

    Raises:
        ModuleNotFoundError: `use_systemd_python=True` and systemd-python is not installed.
    """

    def __init__(
        self, address: str | None = None, *, use_systemd_python: bool | None = None
    ) -> None:
        if use_systemd_python and _sd_daemon is None:
            raise ModuleNotFoundError(
                "systemd-python is not installed: install it with `pip install systemd-python`"
            )
        env_address = os.environ.get("NOTIFY_SOCKET") or None
        self.address: str | None = env_address if address is None else (address or None)
        # systemd.daemon.notify reads NOTIFY_SOCKET itself, so it only fits that address.
        can_use_ext = _sd_daemon is not None and self.address == env_address
        self._use_ext = can_use_ext if use_systemd_python is None else bool(use_systemd_python)
        self._sockaddr = _sockaddr(self.address) if self.address else None

    @property
    def enabled(self) -> bool:
        """Whether a service manager is listening (NOTIFY_SOCKET was set to a usable address)."""
        return self._sockaddr is not None

    def ready(self, status: str | None = None) -> None:
        """Report that the listener is being served (`READY=1`, with an optional `STATUS=`)."""
        self.send({"READY": "1"} if status is None else {"READY": "1", "STATUS": status})

    def status(self, text: str) -> None:
        """Report a one-line human status, shown by `systemctl --user status grite`."""
        self.send({"STATUS": text})

    def stopping(self, status: str | None = None) -> None:
        """Report that shutdown has begun (`STOPPING=1`); send it once, right before exiting."""
        fields = {"STOPPING": "1"} if status is None else {"STOPPING": "1", "STATUS": status}
        self.send(fields)

    def watchdog(self) -> None:
        """Keep-alive ping for units with `WatchdogSec=` (`WATCHDOG=1`)."""
        self.send({"WATCHDOG": "1"})

    def send(self, fields: dict[str, str]) -> bool:
        """Send one message of `KEY=VALUE` lines; return whether it was handed to the socket.

        Values are made single-line (systemd reads one line per field).
        """
        if self._sockaddr is None or not fields:
            return False
        message = "\n".join(f"{key}={_one_line(value)}" for key, value in fields.items())
        if self._use_ext:
            assert _sd_daemon is not None
            try:
                return bool(_sd_daemon.notify(message))
            except OSError as exc:
                _log.debug("sd_notify(%r) failed: %s", message, exc)
                return False
        return self._send_pure(self._sockaddr, message.encode())

    def _send_pure(self, sockaddr: str, data: bytes) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            # A full receive queue must drop the message rather than stall the event loop.
            sock.setblocking(False)
            try:
                sock.sendto(data, sockaddr)
            except OSError as exc:
                _log.debug("notify to %s failed: %s", self.address, exc)
                return False
        return True


def _sockaddr(address: str) -> str | None:
    """The AF_UNIX address for a NOTIFY_SOCKET value, or None when unusable here."""
    if address.startswith("/"):
        return address
    if address.startswith("@") and len(address) > 1:
        # Linux abstract namespace: the leading "@" stands for a NUL byte.
        return "\0" + address[1:]
    _log.warning(
        "NOTIFY_SOCKET=%r is neither a socket path nor an @abstract name; "
        "readiness and status will not reach the service manager",
        address,
    )
    return None


def _one_line(value: str) -> str:
    return " ".join(value.splitlines())
