"""The schema layer (presence/schema): refusals name the field and its
path, a whole number written as a float is the integer it equals, and the
patterns an adapter parses with accept exactly what it can parse."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presence.schema import Invalid, Malformed, convert, decode
from presence.schema.admin import AgentInput, QueueInput
from presence.schema.cases import CustomerInput, CustomerPhone, TransferInput
from presence.schema.center import CenterFile
from presence.schema.channels import (
    EmailInput,
    Mailboxes,
    MessageIds,
    WebForm,
    mailboxes,
    message_ids,
)
from presence.schema.common import NAME_PATTERN, Name
from presence.schema.work import WorkBatch, WorkInput
from presence.store.cases import normalise_phone


def refusal(raw: bytes, tp: Any) -> Invalid:
    with pytest.raises(Invalid) as info:
        decode(raw, tp)
    return info.value


@pytest.mark.parametrize(
    ("raw", "field", "pointer", "words"),
    [
        (b'{"agents": [{"id": "a"}, {"id": "b", "skills": {"english": 11}}]}', "agents[1].skills.english",
         "/agents/1/skills/english", "level from 1 to 10"),
        (b'{"agents": [{"id": "a", "skills": {"bad skill": 1}}]}', "agents[0].skills.bad skill",
         "/agents/0/skills/bad skill", "skill name"),
        (b'{"channels": {"x": {"weight": 0}}}', "channels.x.weight", "/channels/x/weight", "units"),
        (b'{"agents": [{"id": "a", "shoe": 44}]}', "agents[0].shoe", "/agents/0/shoe", "not a known field"),
        (b'{"agents": [{"name": "No id"}]}', "agents[0].id", "/agents/0/id", "is required"),
        (b'{"queues": [{"name": "q", "strategy": "fifo"}]}', "queues[0].strategy", "/queues/0/strategy",
         "most_available"),
        (b'{"webhooks": [{"name": "w", "url": "http://x", "events": ["nope"]}]}', "webhooks[0].events[0]",
         "/webhooks/0/events/0", "one of"),
    ],
)  # fmt: skip
def test_a_refusal_names_the_field_and_its_path(raw: bytes, field: str, pointer: str, words: str) -> None:
    exc = refusal(raw, CenterFile)
    assert (exc.field, exc.pointer) == (field, pointer)
    assert words in exc.message, exc.message


def test_rules_across_fields_name_their_field() -> None:
    assert refusal(b"{}", TransferInput).field == "to_agent"
    both = refusal(b'{"to_agent": "a", "to_queue": "q"}', TransferInput)
    assert both.field == "to_agent" and "exactly one" in both.message
    assert decode(b'{"to_agent": "", "to_queue": "q"}', TransferInput).to_queue == "q"
    body = b'{"channel": "c", "queue": "q", "customer": {"phone": [1]}}'
    assert refusal(body, WorkInput).field == "customer.phone"
    big = b'{"channel": "c", "queue": "q", "payload": {"x": "' + b"y" * 70000 + b'"}}'
    assert refusal(big, WorkInput).field == "payload"
    many = b'{"items": [' + b",".join([b"{}"] * 501) + b"]}"
    assert refusal(many, WorkBatch).status == 413


def test_the_whole_document_of_the_wrong_type() -> None:
    exc = refusal(b"[1, 2]", AgentInput)
    assert exc.path == () and exc.field == "body"
    # a type refused at once must not hide bytes that are no JSON at all
    with pytest.raises(Malformed):
        decode(b"6\x0cT\xff\xfe", WorkInput)
    with pytest.raises(Malformed):
        decode(b'{"channel": ', WorkInput)


def test_a_whole_number_written_as_a_float_is_that_integer() -> None:
    q = decode(
        b'{"priority": 5.0, "relax": [{"after": 1, "lower": 2.0}, {"after": 3, "lower": 1e0}]}', QueueInput
    )
    assert q.priority == 5 and isinstance(q.priority, int)
    assert [r.lower for r in q.relax] == [2, 1]
    w = decode(b'{"channel": "c", "queue": "q", "skills": {"a": 3.0}, "payload": {"price": 10.0}}', WorkInput)
    assert w.skills == {"a": 3} and w.payload == {"price": 10.0}  # free fields are kept as sent
    for bad in (b'{"capacity": 1.5}', b'{"capacity": true}', b'{"capacity": "1"}', b'{"capacity": 0.0}'):
        assert refusal(bad, AgentInput).field == "capacity"
    assert convert({"capacity": 7.0}, AgentInput).capacity == 7


def test_numbers_beyond_64_bits_in_free_fields_are_kept_as_floats() -> None:
    w = decode(b'{"channel": "c", "queue": "q", "payload": {"n": 123456789012345678901234567890}}', WorkInput)
    assert w.payload == {"n": 1.2345678901234568e29}
    assert refusal(
        b'{"channel": "c", "queue": "q", "payload": {"n": 1' + b"0" * 400 + b"}}", WorkInput
    ).field == ("payload")


def test_the_same_item_has_the_same_digest() -> None:
    a = decode(b'{"channel": "c", "queue": "q", "payload": {"a": 1, "b": 2}}', WorkInput)
    b = decode(
        b'{"payload": {"b": 2, "a": 1}, "skills": {}, "priority": 0.0, "queue": "q", "channel": "c"}',
        WorkInput,
    )
    c = decode(b'{"channel": "c", "queue": "q", "payload": {"a": 1, "b": 3}}', WorkInput)
    assert a.digest() == b.digest() != c.digest()


# -- patterns agree with what the code does with a value -------------------------------

_NAME = re.compile(NAME_PATTERN)


def _ok(value: Any, tp: Any) -> bool:
    try:
        convert(value, tp)
    except Invalid:
        return False
    return True


def test_a_name_does_not_end_in_a_newline() -> None:
    # Python's $ also matches before a final newline; ECMA's (JSON Schema's) does not
    assert _ok("alice", Name) and not _ok("alice\n", Name) and not _ok("", Name)
    assert _NAME.search("a" * 64) and not _NAME.search("a" * 65)


_PHONES = st.tuples(
    st.sampled_from(["", " ", "+", " +", "x", "+ "]),
    st.integers(0, 40).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n)),
    st.sampled_from(["", " ", "-1", "(0)", "+", " x"]),
).map("".join)


@settings(max_examples=400, deadline=None)
@given(_PHONES | st.text(max_size=40))
def test_a_customer_phone_is_what_the_directory_can_key(raw: str) -> None:
    assert _ok(raw, CustomerPhone) == (3 <= len(normalise_phone(raw)) <= 32), repr(raw)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["<a@x>", "b@y", "<c>", "  ", " ", "\n", "<", ">", "d>e", "x" * 501, "<" + "y" * 500 + ">"]
        ),
        max_size=5,
    ).map("".join)
)
def test_message_ids_parse_as_they_are_checked(raw: str) -> None:
    if _ok(raw, MessageIds):
        ids = message_ids(raw)
        assert all(i and len(i) <= 500 and not re.search(r"[\s<>]", i) for i in ids), (raw, ids)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ['"Sato, Ken" ', "Ken ", "<", "ken@example.org", ">", ", ", "a@b", " ", "x", "@", '"']
        ),
        min_size=1,
        max_size=6,
    ).map("".join)
)
def test_mailboxes_parse_as_they_are_checked(raw: str) -> None:
    if _ok(raw, Mailboxes):
        found = mailboxes(raw)
        assert found and all(re.fullmatch(r"[^@\s]+@[^@\s]+", addr) for _, addr in found), (raw, found)


def test_email_and_form_shapes() -> None:
    mail = {"message_id": "<m@x>", "from": '"Sato, Ken" <Ken@Example.org>', "to": "a@x, b@y", "text": "hi"}
    e = convert(mail, EmailInput)
    assert mailboxes(e.from_) == [("Sato, Ken", "ken@example.org")]
    assert [a for _, a in mailboxes(e.to)] == ["a@x", "b@y"]
    assert not _ok({**mail, "text": "", "html": None}, EmailInput)
    form = {"message": " hello ", "email": " a@b.co ", "extra": "ignored"}
    assert _ok(form, WebForm)
    assert not _ok({**form, "message": "   "}, WebForm)
    assert not _ok({"message": "x", "email": "", "phone": " "}, WebForm)
    assert _ok({"message": "x", "phone": " +81 (3) 1234-5678 "}, WebForm)
    assert not _ok({"message": "x", "phone": "12"}, WebForm)
    assert _ok({"phones": ["+81 3 1234"], "emails": [" A@B "]}, CustomerInput)
