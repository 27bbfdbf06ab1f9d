"""Every websocket message, in both directions, as msgspec Structs.

What a client may send on ``/ws/agent`` and ``/ws/supervisor`` is a tagged
union on ``type`` per endpoint (`AgentInbound`, `SupervisorInbound`):
`presence.protocol` decodes a frame straight into one of these Structs, in
one pass, from JSON or MessagePack alike, and that decoding is the whole
validation. Unknown extra fields are ignored (forward compatibility within
v1), so no Struct here forbids them.

What the server sends is described here too (`AgentOutbound`,
`SupervisorOutbound`), for the published document (``/asyncapi.json``) and
the tests that hold every frame the server sends to it. The server does not
build these Structs: its events arrive from the Lua scripts as msgpack and
leave, decoded once and encoded once per subprotocol, as maps
(`presence.protocol.decode_events`), so the hot path pays nothing for the
description. An item's posted data (``subject``, ``customer``, ``payload``
...) rides on its events exactly as posted, so those Structs are open too.

A Struct's docstring is its message's description in the document; the
field comments say what the value means.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct, field

from presence.schema.admin import WaitingItem
from presence.schema.common import (
    AgentId,
    Note,
    NoteText,
    OptionalAgentId,
    OptionalQueueName,
    Reason,
    ReplyText,
    Shape,
    StatusName,
    WorkId,
)

# -- shared pieces ---------------------------------------------------------------------

Int64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
# A client's `ref`: echoed on the reply so the client can match it; on the
# agent endpoint also the key under which an action's answer is kept, so a
# retry with the same ref gets the first answer.
REF_KEPT_SECONDS = 60
Ref = Annotated[
    Annotated[str, Meta(max_length=64)] | Int64,
    Meta(
        description="echoed on the reply. On /ws/agent an action's answer is kept under its ref "
        f"for {REF_KEPT_SECONDS} s: the same message sent again with the same ref (a retry after "
        "`unavailable`) gets the first answer and is not applied twice, so a ref must be unique "
        "per agent for a minute"
    ),
]
# A status and its reason are checked against the center's own lists by the
# script, which names the allowed ones; here only their length.
DeclineReason = Annotated[str, Meta(max_length=500, description="a reason of at most 500 characters")]
Disposition = Annotated[str, Meta(max_length=200, description="at most 200 characters")]
CallTarget = Annotated[
    str,
    Meta(max_length=256, description="a transfer target: an extension, number or SIP address (at most 256)"),
]
Millis = Annotated[int, Meta(description="milliseconds since the Unix epoch")]
Number = int | float


class ClientMessage(Struct, tag_field="type", kw_only=True, gc=False):
    """A message a client sends. Its reply (``ok``, ``pong``, ``error``, or a
    ``snapshot`` for ``snapshot.get``) echoes its ``ref``."""

    ref: Ref | None = None


# -- client -> server: both endpoints ----------------------------------------------------


class Ping(ClientMessage, tag="ping"):
    """A heartbeat; answered with ``pong``. Send one every 20-25 s."""

    ts: Int64 | float | None = None  # echoed in the pong


class SnapshotGet(ClientMessage, tag="snapshot.get"):
    """Ask for a fresh ``snapshot`` (which echoes the ref)."""


# -- client -> server: the agent ---------------------------------------------------------


class StatusSet(ClientMessage, tag="status.set"):
    """Set the agent's own status; every socket of the agent gets ``status``."""

    status: StatusName
    reason: Reason | None = None


class OfferAccept(ClientMessage, tag="offer.accept"):
    """Accept an open offer; then ``work.assigned``."""

    work_id: WorkId


class OfferDecline(ClientMessage, tag="offer.decline"):
    """Decline an open offer; then ``offer.rescinded`` with reason ``declined``."""

    work_id: WorkId
    reason: DeclineReason | None = None


class WorkWrapup(ClientMessage, tag="work.wrapup"):
    """Start wrap-up on an item in hand; ``ok`` carries ``wrapup_until``."""

    work_id: WorkId


class WorkComplete(ClientMessage, tag="work.complete"):
    """Complete an item in hand; then ``work.updated`` (``completed``)."""

    work_id: WorkId
    disposition: Disposition | None = None


class WorkNote(ClientMessage, tag="work.note"):
    """A note on the case timeline of an item in hand; ``ok`` carries ``note``."""

    work_id: WorkId
    text: NoteText


class WorkReply(ClientMessage, tag="work.reply"):
    """The holder's reply to the customer, sent on through the channel (the
    ``reply`` webhook); ``ok`` carries ``reply``. A second reply to the
    customer's same message is refused with ``conflict`` (field ``confirm``)
    unless ``confirm`` is true."""

    work_id: WorkId
    text: ReplyText
    confirm: bool = False


class WorkComposing(ClientMessage, tag="work.composing"):
    """The holder is writing a reply (``composing`` true; send again every
    few seconds while typing) or stopped; everyone else sees
    ``case.composing``. ``ok`` carries ``until_ms``."""

    work_id: WorkId
    composing: bool = True


# A Shape for its rule across fields (`GIVEN`, checked after decoding and
# stated in the published schema), without the Shape's refusal of unknown
# fields, which a websocket message ignores.
class WorkTransfer(ClientMessage, Shape, tag="work.transfer", forbid_unknown_fields=False):
    """Hand an item in hand to a colleague or a queue (exactly one of
    ``to_agent``, ``to_queue``); ``ok`` carries ``state``."""

    GIVEN = ((("to_agent", "to_queue"), True),)

    work_id: WorkId
    to_agent: OptionalAgentId | None = None
    to_queue: OptionalQueueName | None = None
    note: Note | None = None


CallAction = Literal["answer", "hold", "resume", "mute", "unmute", "transfer", "hangup"]


class CallControl(ClientMessage, tag="call.control"):
    """A call control, relayed to the telephony system (the ``call.control``
    webhook); ``ok`` carries ``state``, then ``call.state``."""

    work_id: WorkId
    action: CallAction
    target: CallTarget | None = None


# -- client -> server: the supervisor ------------------------------------------------------


class AgentStatusSet(ClientMessage, tag="agent.status.set"):
    """Force an agent's status; the stream records ``by: "supervisor:<sub>"``."""

    agent_id: AgentId
    status: StatusName
    reason: Reason | None = None


class WorkReassign(ClientMessage, tag="work.reassign"):
    """Take an offered or in-hand item from its agent and offer it to ``agent_id``."""

    work_id: WorkId
    agent_id: AgentId
    note: Note | None = None


class WorkPush(ClientMessage, tag="work.push"):
    """Offer a queued item to ``agent_id`` now (signed in, with room, any status)."""

    work_id: WorkId
    agent_id: AgentId


class WorkPull(ClientMessage, tag="work.pull"):
    """Send an offered or in-hand item back to its queue."""

    work_id: WorkId


class AgentWorkGet(ClientMessage, tag="agent.work.get"):
    """An agent's open offers and items in hand, to choose one to pull or
    reassign; ``ok`` carries ``offers`` and ``work``."""

    agent_id: AgentId


AgentInbound = (
    Ping
    | StatusSet
    | OfferAccept
    | OfferDecline
    | WorkWrapup
    | WorkComplete
    | SnapshotGet
    | WorkNote
    | WorkTransfer
    | CallControl
    | WorkReply
    | WorkComposing
)
SupervisorInbound = Ping | AgentStatusSet | SnapshotGet | WorkReassign | WorkPush | WorkPull | AgentWorkGet


# -- server -> client: pieces -----------------------------------------------------------


class AgentView(Struct, kw_only=True):
    """An agent's public view: in its snapshot, its ``status`` and ``load``
    events, the ``agent`` field of item events, the supervisors' ``agents``.
    Of two views, the one with the higher ``ver`` is newer."""

    agent_id: str
    name: str
    status: str
    reason: str  # "" for none
    since: Millis  # when the status was set
    capacity: int  # units the agent can hold
    load: Number  # units held now: its open offers' and work's weights
    by_channel: dict[str, int]  # items held per channel
    items: int
    connected: bool  # at least one live socket, on any process
    idle_since: Millis  # when the agent last finished work (or became available)
    ver: int


class CenterInfo(Struct, kw_only=True):
    """The center (workspace) the socket serves: its token's."""

    id: str
    name: str


class StatusDef(Struct, kw_only=True):
    """A status of the center."""

    name: str
    routable: bool
    reasons: list[str] = field(default_factory=list)


class ChannelDef(Struct, kw_only=True):
    """A channel of the center: its weight in capacity units and its cap per agent (0: none)."""

    name: str
    weight: Number
    cap: int = 0


class Handoff(Struct, kw_only=True):
    """Who handed an item over, and the note they left."""

    by: str  # "agent:<id>" or "supervisor:<sub>"
    note: str = ""
    from_: str | None = field(default=None, name="from")  # the previous holder


class WorkItem(Struct, kw_only=True):
    """An open offer or an item in hand, as the agent's snapshot lists it,
    with the item's posted data (``subject``, ``customer``, ``payload``,
    ``skills``) as posted."""

    work_id: str
    state: str  # queued, offered, assigned, wrapup, completed, abandoned
    queue: str
    channel: str
    priority: int
    agent_id: str | None
    weight: Number
    offers: int  # how many times it was offered
    created: Number | None = None
    offered_at: Number | None = None
    accepted_at: Number | None = None
    wrapup_at: Number | None = None
    ended_at: Number | None = None
    expires_at: Number | None = None  # the offer's deadline (absent: none)
    disposition: str | None = None
    reason: str | None = None
    handoff: Handoff | None = None
    call_state: str | None = None
    overflow_to: str | None = None
    subject: Any = None
    customer: Any = None
    payload: Any = None
    skills: Any = None


class QueueFigures(Struct, kw_only=True):
    """A queue's live figures on the wallboard."""

    name: str
    title: str
    priority: Number
    waiting: int  # items waiting
    oldest_created: Number  # creation time of the oldest waiting item (0: none)
    ready: int  # routable agents with room now
    members: int
    logged_in: int  # members with a live socket
    routable: int  # members in a routable status
    service_level_seconds: Number
    # the first `protocol.WAITING_LISTED` waiting items (absent where the
    # figures are read without them)
    items: list[WaitingItem] | None = None
    # a queue with business hours: open now, and when that changes (0: not
    # within the plan); absent for a queue that is always open
    open: bool | None = None
    changes_at: Millis | None = None
    time_zone: str | None = None  # the hours' time zone, when the queue names one


class CaseNote(Struct, kw_only=True):
    """A note on a case's timeline."""

    author: str
    text: str
    ts: Millis


class CaseReply(Struct, kw_only=True):
    """A reply to the customer as the case keeps it."""

    author: str
    text: str
    ts: Millis
    message: int  # the inbound message it answers (1 = the first; 0: none yet)
    again: bool  # a confirmed second reply to the same message
    channel: str | None = None


# -- server -> client: replies -------------------------------------------------------------


class ServerMessage(Struct, tag_field="type", kw_only=True, omit_defaults=True):
    """A message the server sends."""


class Ok(ServerMessage, tag="ok"):
    """A command with a ref succeeded (a command without a ref gets no ``ok``)."""

    ref: Ref
    wrapup_until: Millis | None = None  # work.wrapup: the wrap-up deadline
    note: CaseNote | None = None  # work.note: the note as stored
    state: str | None = None  # moves and call controls: the item's (or call's) new state
    reply: CaseReply | None = None  # work.reply: the reply as stored
    until_ms: Millis | None = None  # work.composing: when the mark runs out (0: stopped)
    offers: list[WorkItem] | None = None  # agent.work.get: the agent's open offers
    work: list[WorkItem] | None = None  # agent.work.get: the agent's items in hand


class Pong(ServerMessage, tag="pong"):
    """The answer to ``ping``."""

    server_time: Millis
    ref: Ref | None = None
    ts: Int64 | float | None = None  # the ping's, echoed


class Error(ServerMessage, tag="error"):
    """A message that could not be served; the socket stays open."""

    code: str  # bad_frame, bad_message, unknown_type, invalid, not_found, ...
    message: str  # a sentence for a person, naming what was expected
    field: str | None = None  # the offending field, as a path (items[0].id)
    ref: Ref | None = None  # the request's ref, when it had a valid one


class Resync(ServerMessage, tag="resync"):
    """The server may have missed events; a fresh ``snapshot`` follows."""


# -- server -> agent -----------------------------------------------------------------------


class AgentSnapshot(ServerMessage, tag="snapshot"):
    """The agent's whole state: first after connecting, the answer to
    ``snapshot.get`` and after ``resync``. Replace all local state with it."""

    version: int
    agent: AgentView
    offers: list[WorkItem]
    work: list[WorkItem]
    statuses: list[StatusDef]
    channels: list[ChannelDef]
    server_time: Millis
    ref: Ref | None = None
    center: CenterInfo | None = None


class Status(AgentView, ServerMessage, tag="status"):
    """The agent's status changed (by any of its tabs, a supervisor or the system): its view."""


class Load(AgentView, ServerMessage, tag="load"):
    """The agent's capacity in use changed with no item event (a profile change): its view."""


class Offer(ServerMessage, tag="offer"):
    """An item is offered to the agent, with its posted data as posted."""

    work_id: str
    expires_at: Millis  # 0: no timeout
    offered_at: Millis
    attempt: int
    agent: AgentView  # the agent's view with the offer's capacity held
    channel: str | None = None
    queue: str | None = None
    priority: int | None = None
    skills: Any = None
    subject: Any = None
    customer: Any = None
    payload: Any = None
    created_at: Millis | None = None
    handoff: Handoff | None = None  # a transfer or reassign
    history: list[Any] | None = None  # a handed-over or reopened case's history
    reopened: bool | None = None  # a finished case the customer wrote to again


class OfferRescinded(ServerMessage, tag="offer.rescinded"):
    """An open offer is withdrawn: ``timeout``, ``declined``, ``status`` (the
    agent left a routable status), ``abandoned``, ``pulled`` or ``transferred``."""

    work_id: str
    reason: str
    agent: AgentView  # the agent's view with the offer's capacity released


class WorkAssigned(ServerMessage, tag="work.assigned"):
    """An item is now the agent's (``via`` ``accept`` or ``auto``)."""

    work_id: str
    state: str
    agent_id: str
    accepted_at: Millis
    via: str
    agent: AgentView | None = None  # auto-accept only: the view with its capacity taken
    channel: str | None = None
    queue: str | None = None
    priority: int | None = None
    skills: Any = None
    subject: Any = None
    customer: Any = None
    payload: Any = None
    created_at: Millis | None = None


class WorkUpdated(ServerMessage, tag="work.updated"):
    """An item in hand changed state: ``wrapup``, ``completed``, ``transferred``, ``pulled``."""

    work_id: str
    state: str
    wrapup_until: Millis | None = None
    disposition: str | None = None
    agent: AgentView | None = None  # when the item left the agent: its new view


class WorkNoteEvent(ServerMessage, tag="work.note"):
    """A note was added to the case of an item the agent holds or is offered."""

    work_id: str
    note: CaseNote


class WorkMessage(ServerMessage, tag="work.message"):
    """The customer wrote again on the case the agent holds or is offered."""

    work_id: str
    message: dict[str, Any]  # channel, conversation_id, text, from, id, attachments


class WorkReplyEvent(ServerMessage, tag="work.reply"):
    """A reply was sent to the customer on an item the agent holds (from any of its tabs)."""

    work_id: str
    reply: CaseReply


class CaseComposing(ServerMessage, tag="case.composing"):
    """An agent started (or stopped) writing a reply to a case: the case is
    "being answered by" that agent until ``until_ms`` unless renewed. Sent to
    the supervisors and to the agent's own sockets."""

    work_id: str
    agent_id: str
    composing: bool
    until_ms: Millis  # 0 when stopped
    name: str | None = None
    subject: Any = None
    queue: str | None = None
    channel: str | None = None


class CallState(ServerMessage, tag="call.state"):
    """The call's state: ``active``, ``held``, ``muted``, ``transferring`` or ``ended``."""

    work_id: str
    state: str


class CaseUpdated(ServerMessage, tag="case.updated"):
    """The case of an item the agent holds changed (docs/channels.md)."""

    work_id: str
    case: dict[str, Any]


class AgentRemoved(ServerMessage, tag="agent.removed"):
    """The agent was deleted by an admin (its sockets then close with 4404)."""

    agent_id: str


# -- server -> supervisor ------------------------------------------------------------------


class SupervisorSnapshot(ServerMessage, tag="snapshot"):
    """Every agent's view and the queue figures: first after connecting, the
    answer to ``snapshot.get`` and after ``resync``."""

    version: int
    agents: list[AgentView]
    queues: list[QueueFigures]
    statuses: list[StatusDef]
    channels: list[ChannelDef]
    server_time: Millis
    ref: Ref | None = None
    center: CenterInfo | None = None
    # the live "being answered by" marks, each as the case.composing that started it
    composing: list[CaseComposing] = field(default_factory=list)


class Agents(ServerMessage, tag="agents"):
    """Agent views that changed, coalesced (the newest of each agent): each
    replaces the agent's row when its ``ver`` is higher."""

    agents: list[AgentView]


class Queues(ServerMessage, tag="queues"):
    """Live queue figures, about once a second when they changed."""

    queues: list[QueueFigures]
    server_time: Millis


class Kpis(ServerMessage, tag="kpis"):
    """Live KPIs for the center, each queue, channel and agent, one figures
    map per window (docs/kpis.md, "The kpis message"); ``agents`` rides on
    every 5th push only."""

    version: int
    windows: list[str]
    center: dict[str, Any]
    queues: list[dict[str, Any]]
    channels: list[dict[str, Any]]
    server_time: Millis
    agents: list[dict[str, Any]] | None = None


class QueueUpdated(ServerMessage, tag="queue.updated"):
    """The admin API changed a queue."""

    queue: str


class QueueRemoved(ServerMessage, tag="queue.removed"):
    """The admin API deleted a queue."""

    queue: str


AgentOutbound = (
    AgentSnapshot
    | Status
    | Load
    | Offer
    | OfferRescinded
    | WorkAssigned
    | WorkUpdated
    | WorkNoteEvent
    | WorkMessage
    | WorkReplyEvent
    | CaseComposing
    | CallState
    | CaseUpdated
    | AgentRemoved
    | Resync
    | Ok
    | Pong
    | Error
)
SupervisorOutbound = (
    SupervisorSnapshot
    | Agents
    | Queues
    | Kpis
    | CaseComposing
    | QueueUpdated
    | QueueRemoved
    | AgentRemoved
    | Resync
    | Ok
    | Pong
    | Error
)


def tag(cls: type[Struct]) -> str:
    """A message Struct's ``type``."""
    value = cls.__struct_config__.tag
    assert isinstance(value, str), cls
    return value
