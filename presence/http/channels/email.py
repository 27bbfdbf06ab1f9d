"""Email-to-case: ``POST /api/v1/channels/email/inbound`` takes an inbound
email already parsed by the mail gateway (message id, from, to, subject,
text, in-reply-to, references).

The address it was sent to picks the queue (``[intake.email] addresses``,
e.g. support@ -> support). A reply (in-reply-to or references naming a
message of a case) joins that case: it goes to the agent holding the item,
or routes the item again to its last owner first; a Closed case re-opens. A
repeated message id is answered with its case and changes nothing.
"""

from __future__ import annotations

import re
from email.utils import getaddresses, parseaddr
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from presence.http.channels.common import (
    REF_MAX,
    TEXT_MAX,
    center_of,
    customer_of,
    intake_response,
    invalid,
    known_fields,
    obj,
    priority_of,
    skills_of,
    text,
)
from presence.http.common import ctx_of, read_json, require
from presence.services import cases

FIELDS = {
    "message_id",
    "from",
    "to",
    "cc",
    "subject",
    "text",
    "html",
    "in_reply_to",
    "references",
    "priority",
    "skills",
}
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
MAX_REFERENCES = 20


def message_id(value: str, field: str) -> str:
    """A Message-ID without its angle brackets, as the thread key uses it."""
    v = value.strip().strip("<>").strip()
    if not v or len(v) > REF_MAX or any(c.isspace() for c in v):
        raise invalid(field, f"must be a message id like <abc@example.com> (at most {REF_MAX} characters)")
    return v


def _addresses(value: Any, field: str) -> list[str]:
    if isinstance(value, str):
        raw = [value]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        raw = value
    else:
        raise invalid(field, "must be an address or a list of addresses")
    out = [addr.lower() for _, addr in getaddresses(raw) if addr]
    if not out or not all(EMAIL_RE.match(a) for a in out):
        raise invalid(field, "must hold valid email addresses")
    return out


def _references(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        parts = value.split()
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        parts = value
    else:
        raise invalid("references", "must be a string of message ids or a list of them")
    return [message_id(p, "references") for p in parts]


async def inbound(request: Request) -> Response:
    require(request, "service", "supervisor")
    body = obj(await read_json(request))
    known_fields(body, FIELDS)
    mid = message_id(text(body, "message_id", required=True, max_len=REF_MAX + 2), "message_id")
    name, sender = parseaddr(text(body, "from", required=True, max_len=500, what="the sender's address"))
    if not EMAIL_RE.match(sender):
        raise invalid("from", "must be an email address, optionally with a name")
    to = _addresses(body.get("to"), "to")
    cc = _addresses(body["cc"], "cc") if body.get("cc") else []
    subject = text(body, "subject", max_len=1000)
    body_text = text(body, "text", max_len=TEXT_MAX, what="the plain-text body")
    html = text(body, "html", max_len=TEXT_MAX, what="the HTML body")
    if not body_text and not html:
        raise invalid("text", "is required (the plain-text body; or give html)")
    reply_to = (
        [message_id(body["in_reply_to"], "in_reply_to")]
        if isinstance(body.get("in_reply_to"), str) and body["in_reply_to"]
        else []
    )
    if body.get("in_reply_to") not in (None, "") and not reply_to:
        raise invalid("in_reply_to", "must be a message id")
    refs = _references(body.get("references"))
    priority, skills = priority_of(body), skills_of(body)
    intake = center_of(request).intake
    queue = next((intake.addresses[a] for a in to if a in intake.addresses), intake.email_queue)
    customer, customer_id, lead = await customer_of(request, email=sender, name=name)
    # the most recent references first: the nearest message of a case wins
    lookup = [f"email:{r}" for r in [*reply_to, *reversed(refs)][:MAX_REFERENCES]]
    message = {
        "id": mid,
        "channel": "email",
        "from": sender,
        "name": name,
        "to": to,
        "cc": cc,
        "subject": subject,
        "text": body_text,
        "html": html,
        "in_reply_to": reply_to[0] if reply_to else "",
    }
    ctx = ctx_of(request)
    result = await cases.open_case(
        ctx.store,
        ctx.dispatcher,
        ctx.center,
        channel="email",
        queue=queue,
        subject=subject or "(no subject)",
        customer=customer,
        customer_id=customer_id,
        lead=lead,
        payload={"message_id": mid, "from": sender, "to": to, "text": body_text[:2000]},
        case={"source": f"email:{to[0]}", "category": ""},
        message=message,
        dedupe=f"email:{mid}",
        lookup=lookup,
        register=[f"email:{mid}"],
        reopen_closed=True,
        priority=priority,
        skills=skills,
    )
    return intake_response(result, queue=queue)


ROUTES = [Route("/api/v1/channels/email/inbound", inbound, methods=["POST"])]
