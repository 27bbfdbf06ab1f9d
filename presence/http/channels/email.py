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

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from presence.http.channels.common import center_of, customer_of, intake_response
from presence.http.common import Body, ctx_of, require, takes
from presence.schema.channels import EmailInput, mailboxes, message_ids
from presence.services import cases

MAX_REFERENCES = 20


def _addresses(value: str | list[str] | None) -> list[str]:
    """The addresses of a checked field (a list, or one string of them)."""
    parts = [value] if isinstance(value, str) else (value or [])
    return [addr for part in parts for _, addr in mailboxes(part)]


@takes(EmailInput)
async def inbound(request: Request, body: Body[EmailInput]) -> Response:
    await require(request, "service", "supervisor")
    mail = await body()
    mid = message_ids(mail.message_id)[0]
    name, sender = mailboxes(mail.from_)[0]
    to, cc = _addresses(mail.to), _addresses(mail.cc)
    subject, body_text, html = mail.subject or "", mail.text or "", mail.html or ""
    reply_to = message_ids(mail.in_reply_to or "")
    refs = message_ids(
        " ".join([mail.references] if isinstance(mail.references, str) else mail.references or [])
    )
    priority, skills = mail.priority, mail.skills
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
    return intake_response(request, result, queue=queue)


ROUTES = [Route("/api/v1/channels/email/inbound", inbound, methods=["POST"])]
