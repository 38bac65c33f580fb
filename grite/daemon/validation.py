"""Every field of a request, checked by the daemon before anything runs (docs/security.md).

The daemon serves any process of its user, so a request is input like any other: a forged one
must be refused with a clear `bad_request`, never run with a value the in-process path could
not have produced (a negative clock that writes an unreadable event, an empty request id that
two creates share, a cwd with a NUL byte). The `grite` client always sends valid requests: it
takes the request id from os.urandom(16), the clock from time.time_ns() and the cwd from
os.getcwd(). Pure checks plus one stat of the cwd; no grite imports beyond the protocol and
the model's limits.
"""

from __future__ import annotations

import os
import re
import stat
import time

from grite.ipc import protocol
from grite.model.invocation import Invocation
from grite.model.limits import FUTURE_SKEW_MS, MAX_TEXT_CHARS

__all__ = ["REQUEST_ID_LEN", "request_problem"]

# The idempotency key of a write (grite.ipc.transport.Call: os.urandom(16)).
REQUEST_ID_LEN = 16
# Client and daemon share the machine's clock: a request's clock is the moment it was made, and
# a retry reuses it seconds later. A day either way (the skew grite accepts from a remote) is
# far more than a retry needs and keeps a forged clock from writing events out of range.
CLOCK_WINDOW_MS = FUTURE_SKEW_MS
# PATH_MAX on Linux.
MAX_PATH_BYTES = 4096
MAX_ARGV = 4096
MAX_ENV = 256
MAX_ENV_VALUE = 32 * 1024
MAX_COLUMNS = 100_000
_ACTOR = re.compile(r"[0-9a-fA-F]{32}")


def _path_problem(field: str, path: str, *, must_exist: bool) -> str | None:
    if "\0" in path:
        return f"{field} contains a NUL byte"
    if len(os.fsencode(path)) > MAX_PATH_BYTES:
        return f"{field} is longer than {MAX_PATH_BYTES} bytes"
    if not os.path.isabs(path):
        return f"{field} {path!r} is not an absolute path"
    if must_exist:
        try:
            if not stat.S_ISDIR(os.stat(path).st_mode):
                return f"{field} {path!r} is not a directory"
        except OSError as exc:
            return f"{field} {path!r} cannot be used: {exc.strerror}"
    return None


def _clock_problem(now_ms: int) -> str | None:
    here = time.time_ns() // 1_000_000
    if not here - CLOCK_WINDOW_MS <= now_ms <= here + CLOCK_WINDOW_MS:
        return (
            f"now_ms {now_ms} is more than a day away from this machine's clock ({here}); "
            "the client and the daemon share one clock"
        )
    return None


def _text_problem(field: str, text: str, limit: int) -> str | None:
    if "\0" in text:
        return f"{field} contains a NUL byte"
    if len(text) > limit:
        return f"{field} is longer than {limit} characters"
    return None


def _invocation_problem(inv: Invocation) -> str | None:
    if len(inv.request_id) != REQUEST_ID_LEN:
        return f"the invocation's request_id must be {REQUEST_ID_LEN} random bytes"
    problem = _clock_problem(inv.now_ms) or _path_problem("cwd", inv.cwd, must_exist=True)
    if problem:
        return problem
    if len(inv.argv) > MAX_ARGV:
        return f"argv has more than {MAX_ARGV} words"
    for word in inv.argv:
        if problem := _text_problem("an argv word", word, MAX_TEXT_CHARS):
            return problem
    if len(inv.env) > MAX_ENV:
        return f"env has more than {MAX_ENV} variables"
    for key, value in inv.env.items():
        if not key or "=" in key or "\0" in key or len(key) > 256:
            return f"env variable name {key[:64]!r} is not a valid name"
        if problem := _text_problem(f"env variable {key}", value, MAX_ENV_VALUE):
            return problem
    if not 1 <= inv.columns <= MAX_COLUMNS:
        return f"columns {inv.columns} is not between 1 and {MAX_COLUMNS}"
    return None


def request_problem(request: protocol.Request) -> str | None:
    """What is wrong with `request` (one sentence naming the field), or None when it may run.

    Only requests that run something on the user's behalf (RunArgv, Op, Watch) are checked
    beyond their id: control requests (status, stop, ping, retire) carry no fields.
    """
    body = request.body
    if not isinstance(body, (protocol.RunArgv, protocol.Op, protocol.Watch)):
        return None
    if len(request.request_id) != REQUEST_ID_LEN:
        return (
            f"request_id must be {REQUEST_ID_LEN} random bytes, not "
            f"{len(request.request_id)} bytes (it is the idempotency key of a write)"
        )
    if request.actor and not _ACTOR.fullmatch(request.actor):
        return f"actor {request.actor[:64]!r} is not a 32-character hex actor id"
    if len(request.repo_root) > MAX_PATH_BYTES or "\0" in request.repo_root:
        return "repo_root is not a usable path"
    if isinstance(body, protocol.RunArgv):
        return _invocation_problem(body.invocation)
    if isinstance(body, protocol.Op):
        return (
            _clock_problem(body.now_ms)
            or _path_problem("cwd", body.cwd, must_exist=True)
            or (None if body.data_dir is None else _text_problem("data_dir", body.data_dir, 4096))
        )
    problem = _path_problem("cwd", body.cwd, must_exist=True)
    if problem is None and body.since is not None:
        problem = _text_problem("since", body.since, 256)
    return problem
