"""Our Session on its own: building, signing, verifying, and refusing malformed input."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from kernel_nanny import (
    InvalidJSON,
    InvalidSignature,
    KernelNannyError,
    MalformedMessage,
    MissingDelimiter,
    ProtocolError,
    ReplayedMessage,
    TooFewFrames,
)
from kernel_nanny.protocol import (
    DEFAULT_REPLAY_WINDOW,
    DELIMITER,
    PROTOCOL_VERSION,
    Message,
    Session,
    Signer,
    dumps,
    loads,
    parse_date,
    split_identities,
)

KEY = b"0123456789abcdef-secret"


@pytest.fixture
def sender() -> Session:
    return Session(KEY)


@pytest.fixture
def receiver() -> Session:
    return Session(KEY)


def wire(session: Session, msg: Message, identities=()) -> list[bytes]:
    return [bytes(f) for f in session.serialize(msg, identities)]


def resign(frames: list[bytes], key: bytes = KEY) -> list[bytes]:
    """Replace the signature of (possibly tampered) frames with a valid one for ``key``."""
    index = frames.index(DELIMITER)
    frames = list(frames)
    frames[index + 1] = Signer(key).sign(frames[index + 2 : index + 6])
    return frames


# -- building messages ----------------------------------------------------------


def test_msg_header_has_every_protocol_field(sender):
    msg = sender.msg("kernel_info_request")

    assert set(msg.header) == {"msg_id", "msg_type", "username", "session", "date", "version"}
    assert msg.msg_type == "kernel_info_request"
    assert msg.header["session"] == sender.session_id
    assert msg.header["version"] == PROTOCOL_VERSION
    assert abs(msg.date - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert msg.parent_header == {} and msg.metadata == {} and msg.content == {} and msg.buffers == []


def test_msg_ids_are_unique_within_and_across_sessions():
    a, b = Session(KEY), Session(KEY)
    ids = [a.msg("x").msg_id for _ in range(1000)] + [b.msg("x").msg_id for _ in range(1000)]

    assert len(set(ids)) == 2000


def test_msg_parent_accepts_a_message_or_a_dict(sender):
    request = sender.msg("execute_request", {"code": ""})

    assert sender.msg("execute_reply", parent=request).parent_id == request.msg_id
    assert sender.msg("execute_reply", parent=request.to_dict()).parent_id == request.msg_id
    assert sender.msg("execute_reply", parent=request.header).parent_id == request.msg_id


def test_to_dict_has_jupyter_client_shape(sender):
    msg = sender.msg("status", {"execution_state": "idle"}, metadata={"m": 1})
    as_dict = msg.to_dict()

    assert as_dict["msg_id"] == msg.msg_id
    assert as_dict["msg_type"] == "status"
    assert as_dict["content"] == {"execution_state": "idle"}
    assert as_dict["metadata"] == {"m": 1}


def test_parse_date_accepts_z_offsets_and_naive_dates_as_utc():
    instant = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)

    assert parse_date("2024-05-06T07:08:09.123456Z") == instant
    assert parse_date("2024-05-06T07:08:09.123456+00:00") == instant
    assert parse_date("2024-05-06T09:08:09.123456+02:00") == instant
    assert parse_date("2024-05-06T07:08:09.123456") == instant


def test_session_takes_str_keys_like_connection_files_hold_them():
    assert Session(KEY.decode()).key == KEY
    frames = wire(Session(KEY.decode()), Session(KEY.decode()).msg("status"))
    assert Session(KEY).deserialize(frames).msg_type == "status"


# -- round trip -----------------------------------------------------------------


def test_round_trip_keeps_every_part(sender, receiver):
    parent = sender.msg("execute_request", {"code": "1"})
    msg = sender.msg(
        "execute_result",
        {"data": {"text/plain": "1"}},
        parent=parent,
        metadata={"k": [1]},
        buffers=[b"one", b"\x00two"],
    )

    got = receiver.deserialize(wire(sender, msg, [b"id-a", b"id-b"]))

    assert got.identities == [b"id-a", b"id-b"]
    assert got.header == msg.header
    assert got.parent_header == parent.header
    assert got.metadata == {"k": [1]}
    assert got.content == {"data": {"text/plain": "1"}}
    assert [bytes(b) for b in got.buffers] == [b"one", b"\x00two"]


def test_message_identities_are_sent_after_extra_routing_identities(sender, receiver):
    msg = dataclasses.replace(sender.msg("status"), identities=[b"inner"])

    frames = wire(sender, msg, [b"outer"])

    assert frames[:3] == [b"outer", b"inner", DELIMITER]
    assert receiver.deserialize(frames).identities == [b"outer", b"inner"]


def test_split_identities_splits_at_the_delimiter():
    assert split_identities([b"a", b"b", DELIMITER, b"s", b"h"]) == ([b"a", b"b"], [b"s", b"h"])
    assert split_identities([DELIMITER]) == ([], [])


# -- malformed input: each class has its own typed error -------------------------


@pytest.mark.parametrize(
    "error",
    [InvalidSignature, ReplayedMessage, MissingDelimiter, TooFewFrames, InvalidJSON],
)
def test_every_wire_error_is_a_protocol_error_and_a_kernel_nanny_error(error):
    assert issubclass(error, ProtocolError)
    assert issubclass(error, KernelNannyError)


@pytest.mark.parametrize("error", [MissingDelimiter, TooFewFrames, InvalidJSON])
def test_framing_errors_are_malformed_message_errors(error):
    assert issubclass(error, MalformedMessage)


def test_tampered_content_fails_the_signature(sender, receiver):
    frames = wire(sender, sender.msg("execute_request", {"code": "print(1)"}))
    frames[-1] = frames[-1].replace(b"print(1)", b"print(2)")

    with pytest.raises(InvalidSignature, match="bad message signature"):
        receiver.deserialize(frames)


@pytest.mark.parametrize("frame", [2, 3, 4, 5])  # header, parent, metadata, content
def test_tampering_with_any_signed_frame_fails_the_signature(sender, receiver, frame):
    frames = wire(sender, sender.msg("status", {"a": 1}, metadata={"b": 2}, parent={"msg_id": "p"}))
    index = frames.index(DELIMITER) + frame
    frames[index] = frames[index][:-1] + b" }"  # still valid JSON, different bytes

    with pytest.raises(InvalidSignature):
        receiver.deserialize(frames)


def test_garbage_signature_is_refused(sender, receiver):
    frames = wire(sender, sender.msg("status"))
    frames[1] = b"deadbeef"

    with pytest.raises(InvalidSignature):
        receiver.deserialize(frames)


def test_buffers_are_not_signed(sender, receiver):
    """As the protocol says: the HMAC covers the four JSON frames only."""
    frames = wire(sender, sender.msg("status", buffers=[b"original"]))
    frames[-1] = b"swapped"

    assert [bytes(b) for b in receiver.deserialize(frames).buffers] == [b"swapped"]


def test_message_signed_with_the_wrong_key_is_refused(receiver):
    stranger = Session(b"not-the-key")

    with pytest.raises(InvalidSignature):
        receiver.deserialize(wire(stranger, stranger.msg("status")))


def test_unsigned_message_is_refused_when_a_key_is_set(receiver):
    unsigned = Session(b"")
    frames = wire(unsigned, unsigned.msg("status"))
    assert frames[1] == b""

    with pytest.raises(InvalidSignature, match="unsigned"):
        receiver.deserialize(frames)


def test_same_message_twice_is_a_replay(sender, receiver):
    frames = wire(sender, sender.msg("execute_request", {"code": "rm_everything()"}))
    receiver.deserialize(frames)

    with pytest.raises(ReplayedMessage):
        receiver.deserialize(frames)


def test_replay_is_detected_even_with_different_routing_identities(sender, receiver):
    msg = sender.msg("execute_request", {"code": ""})
    receiver.deserialize(wire(sender, msg, [b"first-route"]))

    with pytest.raises(ReplayedMessage):
        receiver.deserialize(wire(sender, msg, [b"another-route"]))


def test_a_refused_signature_is_not_remembered_as_seen(sender, receiver):
    frames = wire(sender, sender.msg("status"))
    bad = list(frames)
    bad[-1] = b'{"x":1}'
    with pytest.raises(InvalidSignature):
        receiver.deserialize(bad)

    assert receiver.deserialize(frames).msg_type == "status"


def test_missing_delimiter(sender, receiver):
    frames = wire(sender, sender.msg("status"))
    frames.remove(DELIMITER)

    with pytest.raises(MissingDelimiter):
        receiver.deserialize(frames)


def test_missing_delimiter_for_no_frames_at_all(receiver):
    with pytest.raises(MissingDelimiter):
        receiver.deserialize([])


@pytest.mark.parametrize("keep", [0, 1, 4])
def test_too_few_frames_after_the_delimiter(sender, receiver, keep):
    frames = wire(sender, sender.msg("status"))
    index = frames.index(DELIMITER)

    with pytest.raises(TooFewFrames, match=f"got {keep}"):
        receiver.deserialize(frames[: index + 1 + keep])


@pytest.mark.parametrize("position", [0, 1, 2, 3])  # header, parent, metadata, content
def test_invalid_json_in_any_frame(receiver, position):
    parts = [b'{"msg_id":"m","msg_type":"status"}', b"{}", b"{}", b"{}"]
    parts[position] = b"{not json"
    frames = resign([DELIMITER, b"", *parts])

    with pytest.raises(InvalidJSON, match="not valid JSON"):
        receiver.deserialize(frames)


@pytest.mark.parametrize("payload", [b"[1, 2]", b'"a string"', b"42"])
def test_json_that_is_not_an_object(receiver, payload):
    frames = resign([DELIMITER, b"", b'{"msg_id":"m","msg_type":"status"}', b"{}", b"{}", payload])

    with pytest.raises(InvalidJSON, match="must be a JSON object"):
        receiver.deserialize(frames)


@pytest.mark.parametrize("position", [1, 2, 3])  # parent_header, metadata, content
def test_null_parts_read_as_empty_like_jupyter_client(receiver, position):
    # xeus-python's welcome status has a null parent header; jupyter_client's
    # Session.deserialize reads a falsy parent header as {} and passes null
    # metadata and content through, so a kernel's message is never dropped for it.
    parts = [b'{"msg_id":"m","msg_type":"status"}', b'{"a":1}', b'{"b":2}', b'{"c":3}']
    parts[position] = b"null"
    frames = resign([DELIMITER, b"", *parts])

    msg = receiver.deserialize(frames)

    assert [msg.parent_header, msg.metadata, msg.content][position - 1] == {}
    assert msg.msg_type == "status"


def test_a_null_header_is_still_refused(receiver):
    # jupyter_client cannot read a message without msg_id either (KeyError).
    frames = resign([DELIMITER, b"", b"null", b"{}", b"{}", b"{}"])

    with pytest.raises(InvalidJSON, match="header"):
        receiver.deserialize(frames)


@pytest.mark.parametrize("header", [b'{"msg_type":"status"}', b'{"msg_id":"m"}', b"{}"])
def test_header_lacking_msg_id_or_msg_type(receiver, header):
    frames = resign([DELIMITER, b"", header, b"{}", b"{}", b"{}"])

    with pytest.raises(InvalidJSON, match="msg_id"):
        receiver.deserialize(frames)


def test_invalid_utf8_is_invalid_json(receiver):
    frames = resign([DELIMITER, b"", b'{"msg_id":"m","msg_type":"\xff"}', b"{}", b"{}", b"{}"])

    with pytest.raises(InvalidJSON):
        receiver.deserialize(frames)


def test_a_protocol_error_leaves_the_session_usable(sender, receiver):
    with pytest.raises(MissingDelimiter):
        receiver.deserialize([b"garbage"])
    with pytest.raises(TooFewFrames):
        receiver.deserialize([DELIMITER, b"sig"])

    assert receiver.deserialize(wire(sender, sender.msg("status"))).msg_type == "status"


# -- unsigned sessions --------------------------------------------------------------


def test_unsigned_session_accepts_unsigned_messages():
    session = Session(b"")
    msg = session.msg("status", {"execution_state": "idle"})

    frames = wire(session, msg)

    assert frames[frames.index(DELIMITER) + 1] == b""
    assert Session(b"").deserialize(frames).content == {"execution_state": "idle"}


def test_unsigned_session_does_not_replay_check():
    session = Session(b"")
    frames = wire(session, session.msg("status"))
    receiver = Session(b"")

    for _ in range(3):
        assert receiver.deserialize(frames).msg_type == "status"


def test_unsigned_session_still_refuses_malformed_frames():
    with pytest.raises(TooFewFrames):
        Session(b"").deserialize([DELIMITER, b"", b"{}"])


def test_signer_enabled_only_with_a_key():
    assert Signer(KEY).enabled
    assert not Signer(b"").enabled
    assert Signer(b"").sign([b"{}"]) == b""


# -- signature schemes --------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["hmac-sha256", "hmac-sha512", "hmac-md5", "hmac-sha1", "hmac-sha3_256"])
def test_supported_schemes_round_trip_and_refuse_other_schemes(scheme):
    sender, receiver = Session(KEY, scheme), Session(KEY, scheme)
    frames = wire(sender, sender.msg("status"))

    assert receiver.signature_scheme == scheme
    assert receiver.deserialize(frames).msg_type == "status"
    other = "hmac-sha256" if scheme != "hmac-sha256" else "hmac-sha512"
    with pytest.raises(InvalidSignature):
        Session(KEY, other).deserialize(frames)


@pytest.mark.parametrize("scheme", ["sha256", "hmac-nope", "hmac-", "", "HMAC-SHA256", "hmac-shake_256"])
def test_unsupported_signature_scheme_is_a_clear_value_error(scheme):
    with pytest.raises(ValueError) as info:
        Session(KEY, scheme)

    message = str(info.value)
    assert "unsupported signature_scheme" in message
    assert repr(scheme) in message


# -- serialisation edge cases -----------------------------------------------------


def test_non_str_dict_keys_become_strings():
    assert json.loads(dumps({1: "int", 2.5: "float", None: "none", "s": "str"})) == {
        "1": "int",
        "2.5": "float",
        "null": "none",
        "s": "str",
    }


def test_bytes_in_content_are_base64(sender, receiver):
    raw = bytes(range(256))
    msg = sender.msg("comm_msg", {"b": raw, "ba": bytearray(b"\x00\x01"), "mv": memoryview(b"view")})

    got = receiver.deserialize(wire(sender, msg))

    assert base64.b64decode(got.content["b"]) == raw
    assert base64.b64decode(got.content["ba"]) == b"\x00\x01"
    assert base64.b64decode(got.content["mv"]) == b"view"


def test_sets_become_lists(sender, receiver):
    got = receiver.deserialize(wire(sender, sender.msg("x", {"s": {3, 1, 2}, "f": frozenset({"a"})})))

    assert sorted(got.content["s"]) == [1, 2, 3]
    assert got.content["f"] == ["a"]


def test_decimals_become_numbers():
    assert json.loads(dumps({"d": Decimal("1.5")})) == {"d": 1.5}


BIG_INTEGERS = [2**64, 2**64 + 1, 2**100 + 1, -(2**63) - 1, 10**40 + 7]


@pytest.mark.parametrize("big", BIG_INTEGERS)
def test_integers_beyond_64_bits_serialise_exactly_on_the_fallback_path(big):
    encoded = dumps({"n": big, "nested": [{"m": big}]})

    assert str(big).encode() in encoded
    assert json.loads(encoded) == {"n": big, "nested": [{"m": big}]}


def test_integers_beyond_64_bits_survive_a_round_trip(sender, receiver):
    """dumps() takes a fallback path to write these exactly; the receiving side must
    not then turn them into (rounded) floats."""
    content = {f"n{i}": big for i, big in enumerate(BIG_INTEGERS)}

    got = receiver.deserialize(wire(sender, sender.msg("x", content)))

    assert got.content == content
    assert all(type(value) is int for value in got.content.values())


def test_fallback_path_still_handles_bytes_sets_and_non_str_keys():
    encoded = dumps({"n": 2**70, 7: "seven", "b": b"hi", "s": {1}})

    assert json.loads(encoded) == {"n": 2**70, "7": "seven", "b": "aGk=", "s": [1]}


def test_fallback_path_serialises_the_same_types_as_the_fast_path():
    """A datetime serialises on its own (orjson handles it natively), so adding an
    unrelated >64-bit integer to the same frame must not make it unserialisable."""
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert json.loads(dumps({"when": when})) == {"when": when.isoformat()}

    assert json.loads(dumps({"when": when, "n": 2**70})) == {"when": when.isoformat(), "n": 2**70}


def test_unserialisable_content_is_a_type_error_naming_the_type(sender):
    class Opaque:
        pass

    with pytest.raises(TypeError, match="Opaque"):
        sender.serialize(sender.msg("x", {"o": Opaque()}))


def test_unicode_round_trips_unescaped_as_utf8(sender, receiver):
    text = "héllo wörld ✓ 日本語 🚀 \u0000 \u2028"
    msg = sender.msg("stream", {"name": "stdout", "text": text, "ключ": "значение"})
    frames = wire(sender, msg)

    assert "日本語 🚀".encode() in frames[-1]
    got = receiver.deserialize(frames)
    assert got.content["text"] == text
    assert got.content["ключ"] == "значение"


def test_loads_refuses_non_objects_and_names_the_frame():
    with pytest.raises(InvalidJSON, match="content"):
        loads(b"[]", "content")
    assert loads(b'{"a": 1}') == {"a": 1}


def test_default_replay_window_matches_jupyter_client():
    assert DEFAULT_REPLAY_WINDOW == 2**16
