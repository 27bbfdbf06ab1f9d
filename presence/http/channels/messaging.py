"""Chat, SMS and social intake: ``POST /api/v1/channels/{channel}/messages``.

Each message carries a conversation id. The first message of a conversation
opens a case in the channel's queue (``[intake.messaging] queues``); later
ones join it: they go to the agent holding the item (``work.message``), or
route the item again, its last owner first, when it was finished. Once the
case is Closed, a new message starts a new case. A repeated message id
changes nothing.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from presence.http.channels.common import center_of, customer_of, intake_response
from presence.http.common import Body, ctx_of, require, takes
from presence.problems import Problem
from presence.schema.channels import MessageInput, Sender
from presence.services import cases

SENDER_FIELDS = tuple(Sender.__struct_fields__)


@takes(MessageInput)
async def message(request: Request, body: Body[MessageInput]) -> Response:
    await require(request, "service", "supervisor")
    channel = request.path_params["channel"]
    queues = center_of(request).intake.messaging
    if channel not in queues:
        raise Problem(
            404,
            f"no messaging channel {channel[:64]!r} (expected one of {', '.join(sorted(queues))})",
            field="channel",
            code="not_found",
        )
    msg_in = await body()
    conv, mid, words = msg_in.conversation_id, msg_in.message_id or "", msg_in.text
    sender = Sender(id=msg_in.from_) if isinstance(msg_in.from_, str) else msg_in.from_
    who = {k: v for k in sorted(SENDER_FIELDS) if (v := getattr(sender, k))}
    attachments, priority, skills = msg_in.attachments, msg_in.priority, msg_in.skills
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
        subject=msg_in.subject or words[:120],
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
    return intake_response(request, result, queue=queues[channel])


ROUTES = [Route("/api/v1/channels/{channel}/messages", message, methods=["POST"])]
