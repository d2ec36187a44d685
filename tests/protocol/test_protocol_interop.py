"""Interop with jupyter_client's Session, in both directions, for every common signature scheme."""

from __future__ import annotations

from datetime import datetime

import pytest
from jupyter_client.session import Session as TheirSession

from kernel_nanny import InvalidSignature
from kernel_nanny.protocol import Session, parse_date

KEY = b"a-shared-secret-0123456789"
SCHEMES = ["hmac-sha256", "hmac-sha512", "hmac-md5"]


@pytest.fixture(params=SCHEMES)
def scheme(request) -> str:
    return request.param


@pytest.fixture
def theirs(scheme) -> TheirSession:
    return TheirSession(key=KEY, signature_scheme=scheme, username="them")


@pytest.fixture
def ours(scheme) -> Session:
    return Session(KEY, scheme, username="us")


def their_frames(theirs: TheirSession, msg: dict, idents: list[bytes], buffers: list[bytes]) -> list[bytes]:
    """What jupyter_client's Session.send puts on the wire: serialize() then the raw buffers."""
    return [*theirs.serialize(msg, ident=idents), *buffers]


def test_their_message_verifies_and_decodes_with_ours(theirs, ours):
    parent = theirs.msg("execute_request", {"code": "1 + 1"})
    msg = theirs.msg(
        "execute_reply",
        {"status": "ok", "execution_count": 3, "text": "héllo ✓"},
        parent=parent,
        metadata={"started": "now", "engine": "e1"},
    )
    frames = their_frames(theirs, msg, [b"router-id-1", b"router-id-2"], [b"\x00\x01binary", b"second buffer"])

    got = ours.deserialize(frames)

    assert got.identities == [b"router-id-1", b"router-id-2"]
    assert got.msg_id == msg["header"]["msg_id"]
    assert got.msg_type == "execute_reply"
    assert got.header["session"] == theirs.session
    assert got.header["username"] == "them"
    assert got.content == {"status": "ok", "execution_count": 3, "text": "héllo ✓"}
    assert got.metadata == {"started": "now", "engine": "e1"}
    assert got.parent_id == parent["header"]["msg_id"]
    assert got.parent_header["msg_type"] == "execute_request"
    assert [bytes(b) for b in got.buffers] == [b"\x00\x01binary", b"second buffer"]


def test_their_header_date_parses_to_the_same_instant(theirs, ours):
    msg = theirs.msg("status", {"execution_state": "idle"})
    sent_date = msg["header"]["date"]
    assert isinstance(sent_date, datetime)

    got = ours.deserialize(their_frames(theirs, msg, [], []))

    assert isinstance(got.header["date"], str)  # dates stay strings until asked for
    assert got.date == sent_date
    assert got.date.utcoffset() is not None


def test_their_parent_date_survives_in_our_parent_header(theirs, ours):
    parent = theirs.msg("execute_request", {"code": ""})
    msg = theirs.msg("execute_reply", {"status": "ok"}, parent=parent)

    got = ours.deserialize(their_frames(theirs, msg, [], []))

    assert parse_date(got.parent_header["date"]) == parent["header"]["date"]


def test_our_message_verifies_and_decodes_with_theirs(theirs, ours):
    parent = ours.msg("execute_request", {"code": "print(1)"})
    msg = ours.msg(
        "display_data",
        {"data": {"text/plain": "ünïcode ☃"}, "metadata": {}},
        parent=parent,
        metadata={"tag": [1, 2, 3]},
        buffers=[b"\xff\x00raw", memoryview(b"view buffer")],
    )
    frames = [bytes(f) for f in ours.serialize(msg, identities=[b"client-7"])]

    idents, rest = theirs.feed_identities(frames)
    got = theirs.deserialize(rest)

    assert idents == [b"client-7"]
    assert got["header"]["msg_id"] == msg.msg_id
    assert got["msg_type"] == "display_data"
    assert got["header"]["session"] == ours.session_id
    assert got["header"]["username"] == "us"
    assert got["content"] == {"data": {"text/plain": "ünïcode ☃"}, "metadata": {}}
    assert got["metadata"] == {"tag": [1, 2, 3]}
    assert got["parent_header"]["msg_id"] == parent.msg_id
    assert got["parent_header"]["msg_type"] == "execute_request"
    assert [bytes(b) for b in got["buffers"]] == [b"\xff\x00raw", b"view buffer"]


def test_our_header_date_reaches_them_as_the_same_instant(theirs, ours):
    msg = ours.msg("status", {"execution_state": "busy"})
    frames = [bytes(f) for f in ours.serialize(msg)]

    got = theirs.deserialize(theirs.feed_identities(frames)[1])

    assert isinstance(got["header"]["date"], datetime)
    assert got["header"]["date"] == msg.date


def test_their_reply_to_our_request_links_back(theirs, ours):
    """A full round trip: our request, their reply with it as parent, decoded by us."""
    request = ours.msg("kernel_info_request")
    received = theirs.deserialize(theirs.feed_identities([bytes(f) for f in ours.serialize(request)])[1])
    reply = theirs.msg("kernel_info_reply", {"status": "ok"}, parent=received)

    got = ours.deserialize(their_frames(theirs, reply, [], []))

    assert got.parent_id == request.msg_id
    assert got.parent_header["session"] == ours.session_id


def test_their_message_under_another_key_is_refused(scheme, ours):
    stranger = TheirSession(key=b"some-other-key", signature_scheme=scheme)
    frames = their_frames(stranger, stranger.msg("status", {}), [], [])

    with pytest.raises(InvalidSignature):
        ours.deserialize(frames)


def test_our_message_under_another_key_is_refused_by_them(scheme, theirs):
    stranger = Session(b"some-other-key", scheme)
    frames = [bytes(f) for f in stranger.serialize(stranger.msg("status", {}))]

    with pytest.raises(ValueError, match="Invalid Signature"):
        theirs.deserialize(theirs.feed_identities(frames)[1])


def test_our_signature_is_byte_identical_to_theirs(scheme, ours, theirs):
    """Same four frames, same key and scheme: same hex digest as jupyter_client."""
    frames = [bytes(f) for f in ours.serialize(ours.msg("status", {"execution_state": "idle"}))]
    signature, signed = frames[1], frames[2:6]

    assert signature == theirs.sign(signed)


def test_unsigned_sessions_interoperate():
    theirs = TheirSession(key=b"")
    ours = Session(b"")

    got = ours.deserialize(their_frames(theirs, theirs.msg("status", {"execution_state": "idle"}), [], []))
    assert got.content == {"execution_state": "idle"}

    frames = [bytes(f) for f in ours.serialize(ours.msg("status", {"execution_state": "busy"}))]
    assert frames[1] == b""
    assert theirs.deserialize(theirs.feed_identities(frames)[1])["content"] == {"execution_state": "busy"}


@pytest.mark.parametrize("packer", ["json", "orjson"])
def test_messages_from_either_of_their_packers_decode_with_ours(scheme, ours, packer):
    """jupyter_client falls back to stdlib json (other spacing, other date format) without orjson;
    the signature covers the exact bytes, so both must verify."""
    theirs = TheirSession(key=KEY, signature_scheme=scheme, packer=packer, unpacker=packer)
    msg = theirs.msg("stream", {"name": "stdout", "text": "ünï ✓\n", "nested": {"a": [1, 2.5, None, True]}})

    got = ours.deserialize(their_frames(theirs, msg, [b"id"], []))

    assert got.content == {"name": "stdout", "text": "ünï ✓\n", "nested": {"a": [1, 2.5, None, True]}}
    assert got.date == msg["header"]["date"]
