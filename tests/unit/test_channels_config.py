"""Config sections of the channel adapters, cases and webhooks, and the
webhook body and signature (pure: no Redis, no server)."""

from __future__ import annotations

import hashlib
import hmac

import msgpack
import orjson
import pytest

from presence.center import Invalid, parse_center
from presence.services.webhooks import body_of, sign, verify

QUEUES = [{"name": "support"}, {"name": "billing"}]


def center(**extra: object) -> dict[str, object]:
    return {"queues": QUEUES, **extra}


def test_defaults_keep_old_files_parsing() -> None:
    c = parse_center({"queues": QUEUES})
    assert c.intake.voice_queue == "support" and c.intake.messaging == dict.fromkeys(
        ("chat", "sms", "social"), "support"
    )
    assert c.cases.statuses == ("New", "In progress", "Waiting close", "Closed")
    assert (c.cases.initial, c.cases.working, c.cases.closed, c.cases.reopen) == (
        "New",
        "In progress",
        "Closed",
        "New",
    )
    assert c.webhooks == () and c.queues["support"].escalate_at() == -1


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"intake": {"voice": {"ivr": {"1": "nowhere"}}}}, "intake.voice.ivr.1"),
        ({"intake": {"email": {"addresses": {"a@b.c": 5}}}}, "intake.email.addresses.a@b.c"),
        ({"intake": {"forms": {"rate_limit": -1}}}, "intake.forms.rate_limit"),
        ({"intake": {"fax": {}}}, "intake.fax"),
        ({"cases": {"statuses": ["Only"]}}, "cases.statuses"),
        ({"cases": {"statuses": ["A", "B"], "closed": "C"}}, "cases.closed"),
        ({"webhooks": [{"name": "w", "url": "ftp://x", "secret": "s" * 16}]}, "webhooks[0].url"),
        ({"webhooks": [{"name": "w", "url": "http://x", "secret": "short"}]}, "webhooks[0].secret"),
        (
            {"webhooks": [{"name": "w", "url": "http://x", "secret": "s" * 16, "events": ["nope"]}]},
            "webhooks[0].events[0]",
        ),
        (
            {"webhooks": [{"name": "w", "url": "http://x", "secret_env": "PRESENCE_NO_SUCH_VAR"}]},
            "webhooks[0].secret_env",
        ),
    ],
)
def test_bad_sections_name_the_field(extra: dict[str, object], field: str) -> None:
    with pytest.raises(Invalid) as exc:
        parse_center(center(**extra))
    assert exc.value.field == field


def test_queue_overflow_and_relaxation() -> None:
    q = {
        "name": "support",
        "overflow_to": "billing",
        "overflow_after": 30,
        "relax": [{"after": 10, "lower": 1}],
    }
    c = parse_center({"queues": [q, {"name": "billing"}]})
    assert c.queues["support"].escalate_at() == 10
    q2 = {**q, "overflow_when_unstaffed": True}
    assert parse_center({"queues": [q2, {"name": "billing"}]}).queues["support"].escalate_at() == 0
    # steps apply in the order of their time, however they are listed (a
    # rule JSON Schema cannot state is not a rule of the schema)
    unsorted = {**q, "relax": [{"after": 10}, {"after": 5, "drop": ["english"]}]}
    steps = parse_center({"queues": [unsorted, {"name": "billing"}]}).queues["support"].relax
    assert [(r.after, r.drop) for r in steps] == [(5.0, ("english",)), (10.0, ())]
    bad = {**q, "relax": [{"after": 10}, {"after": -5}]}
    with pytest.raises(Invalid) as exc:
        parse_center({"queues": [bad, {"name": "billing"}]})
    assert exc.value.field == "queues[0].relax[1].after"
    with pytest.raises(Invalid) as exc:
        parse_center({"queues": [{**q, "relax": [{"lower": 1}]}, {"name": "billing"}]})
    assert exc.value.field == "queues[0].relax[0].after" and "required" in exc.value.message


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"type":"work.assigned"}'
    want = "sha256=" + hmac.new(b"k" * 16, body, hashlib.sha256).hexdigest()
    assert sign("k" * 16, body) == want
    assert verify("k" * 16, body, want)
    assert not verify("k" * 16, body + b" ", want)
    assert not verify("k" * 16, body, None)


def test_body_carries_data_and_item() -> None:
    head = msgpack.packb({"type": "case.comment", "ts": 5, "work_id": "w1"})
    note = msgpack.packb({"note": {"author": "a", "text": "hi", "ts": 5}})
    kind, raw = body_of("1-0", "crm", "default", {b"h": head, b"i": note})
    assert kind == "case.comment"
    assert orjson.loads(raw) == {
        "id": "1-0",
        "webhook": "crm",
        "center": "default",
        "type": "case.comment",
        "ts": 5,
        "data": {"work_id": "w1", "note": {"author": "a", "text": "hi", "ts": 5}},
    }
    item = msgpack.packb({"channel": "voice", "payload": {"call_id": "c"}})
    _, raw = body_of("2-0", "crm", "default", {b"h": msgpack.packb({"type": "work.assigned"}), b"i": item})
    assert orjson.loads(raw)["item"] == {"channel": "voice", "payload": {"call_id": "c"}}
