"""The case messages of the sockets: an agent's note, reply, composing mark,
transfer and call control (``work.note``, ``work.reply``, ``work.composing``,
``work.transfer``, ``call.control``) and a
supervisor's moves by force (``work.reassign``, ``work.push``, ``work.pull``).

The HTTP routes of the same changes are ``presence/http/cases.py``; both
call the same services (``presence/services/cases.py``) and store calls
(``presence/store/cases.py``).
"""

from __future__ import annotations

from typing import Any

from presence import protocol
from presence.context import Context
from presence.schema import messages as m
from presence.services import cases
from presence.store import cases as case_store
from presence.ws.hub import Conn

# Every rule on these messages' fields (the note's length, exactly one
# transfer target, the call actions) is in their Structs: a message reaches
# a handler here already valid.


async def note(ctx: Context, conn: Conn, msg: m.WorkNote) -> dict[str, Any]:
    added = await case_store.add_note(
        ctx.store, msg.work_id, conn.subject, msg.text, holder_only=conn.subject
    )
    return protocol.ok(msg.ref, note=added)


async def reply(ctx: Context, conn: Conn, msg: m.WorkReply) -> dict[str, Any]:
    sent = await case_store.reply(ctx.store, msg.work_id, conn.subject, msg.text, confirm=msg.confirm)
    return protocol.ok(msg.ref, reply=sent)


async def composing(ctx: Context, conn: Conn, msg: m.WorkComposing) -> dict[str, Any]:
    until = await case_store.composing(ctx.store, msg.work_id, conn.subject, msg.composing)
    return protocol.ok(msg.ref, until_ms=until)


async def transfer(ctx: Context, conn: Conn, msg: m.WorkTransfer) -> dict[str, Any]:
    state = await cases.move(
        ctx.store,
        ctx.dispatcher,
        msg.work_id,
        "transfer",
        f"agent:{conn.subject}",
        holder_only=conn.subject,
        to_agent=msg.to_agent or "",
        to_queue=msg.to_queue or "",
        note=msg.note or "",
    )
    return protocol.ok(msg.ref, state=state)


async def call_control(ctx: Context, conn: Conn, msg: m.CallControl) -> dict[str, Any]:
    state = await case_store.call_control(ctx.store, msg.work_id, conn.subject, msg.action, msg.target or "")
    return protocol.ok(msg.ref, state=state)


async def reassign(ctx: Context, conn: Conn, msg: m.WorkReassign) -> dict[str, Any]:
    state = await cases.move(
        ctx.store,
        ctx.dispatcher,
        msg.work_id,
        "reassign",
        f"supervisor:{conn.subject}",
        to_agent=msg.agent_id,
        note=msg.note or "",
    )
    return protocol.ok(msg.ref, state=state)


async def push(ctx: Context, conn: Conn, msg: m.WorkPush) -> dict[str, Any]:
    state = await cases.move(
        ctx.store, ctx.dispatcher, msg.work_id, "push", f"supervisor:{conn.subject}", to_agent=msg.agent_id
    )
    return protocol.ok(msg.ref, state=state)


async def pull(ctx: Context, conn: Conn, msg: m.WorkPull) -> dict[str, Any]:
    state = await cases.move(ctx.store, ctx.dispatcher, msg.work_id, "pull", f"supervisor:{conn.subject}")
    return protocol.ok(msg.ref, state=state)
