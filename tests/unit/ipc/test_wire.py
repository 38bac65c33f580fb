"""grite.ipc.wire against msgspec: the client's msgpack must be byte for byte the daemon's.

The `grite` command encodes its hello and request, and decodes the daemon's hello and reply,
without msgspec; every field of those messages is checked here in both directions.
"""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grite.ipc import protocol, wire
from grite.ipc.client import ServerHello
from grite.model.invocation import Invocation, Outcome

text = st.text(max_size=300)
ints = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from([0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, -32, -33, -128,
                     -129, -32768, -32769, -(2**31), -(2**31) - 1]),
)  # fmt: skip
scalars = st.one_of(st.none(), st.booleans(), ints, text, st.binary(max_size=300))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=20), st.dictionaries(text, inner, max_size=20)
    ),
    max_leaves=60,
)
invocations = st.builds(
    dict,
    argv=st.lists(text, max_size=20),
    cwd=text,
    env=st.dictionaries(text, text, max_size=10),
    request_id=st.binary(min_size=16, max_size=16),
    now_ms=st.integers(min_value=0, max_value=2**63 - 1),
    stdin=st.one_of(st.none(), st.binary(max_size=70_000)),
    stdout_isatty=st.booleans(),
    columns=st.integers(min_value=0, max_value=100_000),
)


@settings(max_examples=300)
@given(values)
def test_generic_values_encode_as_msgspec_does_and_decode_back(value: object) -> None:
    packed = msgspec.msgpack.encode(value)
    assert wire.encode(value) == packed
    assert wire.decode(packed) == value


@settings(max_examples=200)
@given(invocations, text, text)
def test_the_run_argv_request_is_byte_identical_to_msgspec(
    fields: dict[str, object], actor: str, repo_root: str
) -> None:
    rid = b"r" * 16
    mine = wire.request(rid, wire.run_argv(**fields), actor=actor, repo_root=repo_root)  # type: ignore[arg-type]
    theirs = protocol.Request(
        request_id=rid,
        body=protocol.RunArgv(invocation=Invocation(**fields)),  # type: ignore[arg-type]
        actor=actor,
        repo_root=repo_root,
    )
    assert mine == protocol.encode(theirs)
    assert protocol.decode_request(mine) == theirs


@given(st.text(max_size=40), st.integers(min_value=0, max_value=2**31), text)
def test_the_client_hello_is_byte_identical_to_msgspec(build: str, pid: int, install: str) -> None:
    mine = wire.hello(protocol.PROTOCOL_VERSION, build, pid, install)
    theirs = protocol.Hello(
        protocol_version=protocol.PROTOCOL_VERSION, build_id=build, pid=pid, install=install
    )
    assert mine == protocol.encode(theirs)


@given(st.lists(text, max_size=10), text, text)
def test_the_server_hello_reads_every_field(caps: list[str], mode: str, install: str) -> None:
    hello = protocol.Hello(
        protocol_version=7, build_id="b" * 16, pid=42, capabilities=caps, mode=mode,
        install=install,
    )  # fmt: skip
    read = ServerHello(wire.decode(protocol.encode(hello)))
    assert (read.protocol_version, read.build_id, read.pid) == (7, "b" * 16, 42)
    assert (read.capabilities, read.mode, read.install) == (caps, mode, install)


@settings(max_examples=200)
@given(st.integers(min_value=-(2**31), max_value=2**31), text, text)
def test_a_run_argv_result_reads_every_field(code: int, out: str, err: str) -> None:
    outcome = Outcome(exit_code=code, stdout=out, stderr=err)
    frame = protocol.encode(
        protocol.Result(request_id=b"q" * 16, data=protocol.RunArgvResult(outcome=outcome))
    )
    assert wire.reply_head(frame) == ("result", True, "")
    reply = wire.decode(frame)
    assert reply == {
        "type": "result",
        "request_id": b"q" * 16,
        "data": {"type": "run_argv", "outcome": {"exit_code": code, "stdout": out, "stderr": err}},
        "final": True,
    }


@given(st.sampled_from(protocol.ERROR_CODES), text, st.dictionaries(text, text, max_size=5))
def test_an_error_reads_every_field(code: str, message: str, details: dict[str, str]) -> None:
    error = protocol.Error(
        request_id=b"e", code=code, message=message, details=details, exit_code=4
    )
    frame = protocol.encode(error)
    assert wire.reply_head(frame) == ("error", True, code)
    assert wire.decode(frame) == {
        "type": "error",
        "request_id": b"e",
        "code": code,
        "message": message,
        "details": details,
        "exit_code": 4,
        "final": True,
    }


def test_non_final_and_unknown_frames_are_told_apart() -> None:
    output = protocol.encode(protocol.Output(stream="stdout", data="x"))
    note = protocol.encode(protocol.Notification(kind="wal_advanced", body=b"\x80"))
    assert wire.reply_head(output) == ("output", False, "")
    assert wire.reply_head(note) == ("notification", False, "")
    future = msgspec.msgpack.encode({"type": "progress", "final": False, "pct": 3})
    assert wire.reply_head(future) == ("progress", False, "")
    final = msgspec.msgpack.encode({"type": "verdict", "final": True})
    assert wire.reply_head(final) == ("verdict", True, "")


def test_a_large_result_is_recognised_from_its_first_bytes() -> None:
    data = msgspec.Raw(msgspec.msgpack.encode({"rows": [{"n": i} for i in range(50_000)]}))
    frame = protocol.encode(protocol.Result(request_id=b"x", data=protocol.OpResult(data=data)))
    assert wire.reply_head(frame[:40] + b"") == ("result", True, "")


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"\x92\x01", b"\x01\x02", b"\xd9\x05ab", b"\xa2\xff\xfe", b"\xc7\x01\x00x"],
    ids=["empty", "never-used", "short-array", "trailing", "short-str", "bad-utf8", "ext"],
)
def test_malformed_msgpack_is_a_wire_error(data: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.decode(data)


@pytest.mark.parametrize("data", [b"", b"\x01", b"\x81\xa4kind\xa1x", b"\x81\xa4type\x01", b"\x80"])
def test_a_reply_without_its_type_first_is_a_wire_error(data: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.reply_head(data)
