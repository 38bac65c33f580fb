"""Protocol messages: tags are frozen, round trips are exact, unknown frames are handled."""

from __future__ import annotations

import msgspec
import pytest

from grite.ipc import protocol
from grite.model.invocation import Invocation, Outcome


def _inv() -> Invocation:
    return Invocation(
        argv=["issue", "list", "--json"],
        cwd="/repo",
        env={"GRITE_ACTOR": "a" * 32},
        request_id=bytes(range(16)),
        now_ms=1_700_000_000_000,
        stdin=b"body",
        stdout_isatty=True,
        columns=120,
    )


def test_request_tags_never_change() -> None:
    tags = {protocol.request_tag(k) for k in protocol.RequestBody.__args__}  # type: ignore[attr-defined]
    assert tags >= {"run_argv", "daemon_status", "daemon_stop", "retire", "ping"}


@pytest.mark.parametrize(
    "body",
    [
        protocol.RunArgv(invocation=_inv()),
        protocol.DaemonStatus(),
        protocol.DaemonStop(),
        protocol.Retire(),
        protocol.Ping(),
    ],
)
def test_request_round_trip(body: protocol.RequestBody) -> None:
    req = protocol.Request(request_id=b"r" * 16, body=body, repo_root="/repo", actor="x")
    assert protocol.decode_request(protocol.encode(req)) == req


def test_response_round_trip_keeps_outcome_and_error_fields() -> None:
    outcome = Outcome(exit_code=3, stdout="", stderr="no such issue\n")
    result = protocol.Result(request_id=b"1", data=protocol.RunArgvResult(outcome=outcome))
    error = protocol.Error(
        request_id=b"1", code="busy", message="try later", details={"n": "3"}, exit_code=5
    )
    assert protocol.decode_response(protocol.encode(result)) == result
    assert protocol.decode_response(protocol.encode(error)) == error


@pytest.mark.parametrize(
    "data",
    [
        protocol.OpResult(data=msgspec.Raw(msgspec.msgpack.encode({"issue_id": "ab", "n": [1]}))),
        protocol.OpResult(
            error=protocol.OpError(
                code="not_found",
                message="no issue",
                details=msgspec.Raw(msgspec.msgpack.encode({"prefix": "ab"})),
            ),
            warnings=["a lock is held"],
        ),
        protocol.RunArgvResult(outcome=Outcome(exit_code=0, stdout="x\n", stderr="")),
        protocol.Ack(),
    ],
    ids=["op-data", "op-error", "run-argv", "ack"],
)
def test_every_result_variant_round_trips(data: protocol.ResultData) -> None:
    # msgspec 0.23 refuses to decode `msgspec.Raw | None`: an OpResult carrying data did not
    # decode, and every grite.Client call silently ran again in-process.
    result = protocol.Result(request_id=b"r" * 16, data=data)
    decoded = protocol.decode_response(protocol.encode(result))
    assert decoded == result
    if isinstance(data, protocol.OpResult) and data.error is None:
        assert isinstance(decoded, protocol.Result) and isinstance(decoded.data, protocol.OpResult)
        assert msgspec.msgpack.decode(decoded.data.data) == {"issue_id": "ab", "n": [1]}


def test_op_request_round_trips() -> None:
    op = protocol.Op(
        args=msgspec.Raw(msgspec.msgpack.encode({"type": "issue_show", "issue": "abcd"})),
        cwd="/repo",
        now_ms=5,
        data_dir="/d",
    )
    req = protocol.Request(request_id=b"r" * 16, body=op, actor="a" * 32)
    assert protocol.decode_request(protocol.encode(req)) == req


def test_unknown_response_kind_is_readable_as_head() -> None:
    data = msgspec.msgpack.encode({"type": "progress", "final": False, "pct": 3})
    with pytest.raises(msgspec.ValidationError):
        protocol.decode_response(data)
    head = protocol.decode_response_head(data)
    assert (head.type, head.final) == ("progress", False)


def test_undecodable_request_still_yields_its_head() -> None:
    data = msgspec.msgpack.encode(
        {"request_id": b"abc", "schema_version": 9, "body": {"type": "future_op"}}
    )
    with pytest.raises(msgspec.ValidationError):
        protocol.decode_request(data)
    assert protocol.decode_request_head(data) == protocol.RequestHead(
        request_id=b"abc", schema_version=9
    )


def test_build_id_is_cached_and_matches_a_fresh_computation() -> None:
    first = protocol.build_id()
    assert first is protocol.build_id()
    assert first == protocol.compute_build_id()
    assert len(first) == protocol.BUILD_ID_LEN
