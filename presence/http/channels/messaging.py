"""Chat, SMS and social intake: ``POST /api/v1/channels/{channel}/messages``.

Each message carries a conversation id. The first message of a conversation
opens a case in the channel's queue (``[intake.messaging] queues``); later
ones join it: they go to the agent holding the item (``work.message``), or
route the item again, its last owner first, when it was finished. Once the
case is Closed, a new message starts a new case. A repeated message id
changes nothing.
"""

from __future__ import annotations

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
from presence.problems import Problem
from presence.services import cases

FIELDS = {"conversation_id", "message_id", "from", "text", "subject", "priority", "skills", "attachments"}
SENDER_FIELDS = {"id", "name", "phone", "email", "handle"}


def _ref(body: dict[str, Any], name: str, required: bool) -> str:
    v = text(body, name, required=required, max_len=REF_MAX, what="an id from the messaging platform")
    if v and any(c.isspace() for c in v):
        raise invalid(name, "must not contain spaces")
    return v


async def message(request: Request) -> Response:
    require(request, "service", "supervisor")
    channel = request.path_params["channel"]
    queues = center_of(request).intake.messaging
    if channel not in queues:
        raise Problem(
            404,
            f"no messaging channel {channel[:64]!r} (expected one of {', '.join(sorted(queues))})",
            field="channel",
            code="not_found",
        )
    body = obj(await read_json(request))
    known_fields(body, FIELDS)
    conv = _ref(body, "conversation_id", True)
    mid = _ref(body, "message_id", False)
    sender = body.get("from", {})
    if isinstance(sender, str):
        sender = {"id": sender}
    if not isinstance(sender, dict):
        raise invalid("from", "must be an object {id, name, phone, email, handle} or a sender id")
    known_fields(sender, SENDER_FIELDS)
    who: dict[str, str] = {}
    for k in sorted(SENDER_FIELDS):
        v = sender.get(k)
        if v is None or v == "":
            continue
        if not isinstance(v, str) or len(v) > 200:
            raise invalid(f"from.{k}", "must be a string of at most 200 characters")
        who[k] = v
    words = text(body, "text", required=True, max_len=TEXT_MAX, what="the message text")
    attachments = body.get("attachments", [])
    if not isinstance(attachments, list) or len(attachments) > 20:
        raise invalid("attachments", "must be a list of at most 20 items")
    priority, skills = priority_of(body), skills_of(body)
    customer, customer_id, lead = await customer_of(
        request, phone=who.get("phone", ""), email=who.get("email", ""), name=who.get("name", "")
    )
    if lead and who.get("handle"):
        customer["handle"] = who["handle"]
    msg = {
        "id": mid,
        "channel": channel,
        "conversation_id": conv,
        "from": who,
        "text": words,
        "attachments": attachments,
    }
    thread = f"conv:{channel}:{conv}"
    ctx = ctx_of(request)
    result = await cases.open_case(
        ctx.store,
        ctx.dispatcher,
        ctx.center,
        channel=channel,
        queue=queues[channel],
        subject=text(body, "subject", max_len=1000) or words[:120],
        customer=customer,
        customer_id=customer_id,
        lead=lead,
        payload={"conversation_id": conv, "text": words[:2000]},
        case={"source": channel, "category": "", "conversation_id": conv},
        message=msg,
        dedupe=f"msg:{channel}:{mid}" if mid else "",
        lookup=[thread],
        register=[thread, *([f"msg:{channel}:{mid}"] if mid else [])],
        reopen_closed=False,
        priority=priority,
        skills=skills,
    )
    return intake_response(result, queue=queues[channel])


ROUTES = [Route("/api/v1/channels/{channel}/messages", message, methods=["POST"])]
