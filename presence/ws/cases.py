"""The case messages of the sockets: an agent's note, transfer and call
control (``work.note``, ``work.transfer``, ``call.control``) and a
supervisor's moves by force (``work.reassign``, ``work.push``, ``work.pull``).

The HTTP routes of the same changes are ``presence/http/cases.py``; both
call the same services (``presence/services/cases.py``) and store calls
(``presence/store/cases.py``).
"""

from __future__ import annotations

from typing import Any

from presence import protocol
from presence.context import Context
from presence.protocol import ErrorCode, Message, ProtocolError
from presence.services import cases
from presence.store import cases as case_store
from presence.ws.hub import Conn

CALL_ACTIONS = ("answer", "hold", "resume", "mute", "unmute", "transfer", "hangup")


def _text(msg: Message, name: str, max_len: int = cases.NOTE_MAX) -> str:
    value = msg.data.get(name) or ""
    if len(value) > max_len:
        raise ProtocolError(
            ErrorCode.INVALID, f"{name} must be at most {max_len} characters", field=name, ref=msg.ref
        )
    return str(value)


async def note(ctx: Context, conn: Conn, msg: Message) -> dict[str, Any]:
    text = _text(msg, "text")
    if not text.strip():
        raise ProtocolError(ErrorCode.INVALID, "text must not be empty", field="text", ref=msg.ref)
    added = await case_store.add_note(
        ctx.store, msg.data["work_id"], conn.subject, text, holder_only=conn.subject
    )
    return protocol.ok(msg.ref, note=added)


async def transfer(ctx: Context, conn: Conn, msg: Message) -> dict[str, Any]:
    to_agent, to_queue = msg.data.get("to_agent") or "", msg.data.get("to_queue") or ""
    if bool(to_agent) == bool(to_queue):
        raise ProtocolError(
            ErrorCode.INVALID, "give exactly one of to_agent or to_queue", field="to_agent", ref=msg.ref
        )
    state = await cases.move(
        ctx.store,
        ctx.dispatcher,
        msg.data["work_id"],
        "transfer",
        f"agent:{conn.subject}",
        holder_only=conn.subject,
        to_agent=to_agent,
        to_queue=to_queue,
        note=_text(msg, "note"),
    )
    return protocol.ok(msg.ref, state=state)


async def call_control(ctx: Context, conn: Conn, msg: Message) -> dict[str, Any]:
    action = msg.data["action"]
    if action not in CALL_ACTIONS:
        raise ProtocolError(
            ErrorCode.INVALID, f"action must be one of {', '.join(CALL_ACTIONS)}", field="action", ref=msg.ref
        )
    state = await case_store.call_control(
        ctx.store, msg.data["work_id"], conn.subject, action, msg.data.get("target") or ""
    )
    return protocol.ok(msg.ref, state=state)


async def reassign(ctx: Context, conn: Conn, msg: Message) -> dict[str, Any]:
    state = await cases.move(
        ctx.store,
        ctx.dispatcher,
        msg.data["work_id"],
        "reassign",
        f"supervisor:{conn.subject}",
        to_agent=msg.data["agent_id"],
        note=_text(msg, "note"),
    )
    return protocol.ok(msg.ref, state=state)


async def push(ctx: Context, conn: Conn, msg: Message) -> dict[str, Any]:
    state = await cases.move(
        ctx.store,
        ctx.dispatcher,
        msg.data["work_id"],
        "push",
        f"supervisor:{conn.subject}",
        to_agent=msg.data["agent_id"],
    )
    return protocol.ok(msg.ref, state=state)


async def pull(ctx: Context, conn: Conn, msg: Message) -> dict[str, Any]:
    state = await cases.move(
        ctx.store, ctx.dispatcher, msg.data["work_id"], "pull", f"supervisor:{conn.subject}"
    )
    return protocol.ok(msg.ref, state=state)
