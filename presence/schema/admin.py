"""The center's admin shapes: agents and queues (as the admin API takes them
and as the center file lists them), and the answers of the admin API.

An agent's or a queue's settings are one Struct each (`AgentSettings`,
`QueueSettings`); the API body adds the identity it may repeat from the path
(`AgentInput.id`, `QueueInput.name`: read-only, since the path names the
item), the center file's entry requires it (``presence/schema/center.py``),
and the answer carries every setting (`Queue`, derived field by field, so a
new setting cannot be left out of the document).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Final, Literal, get_args
from zoneinfo import available_timezones

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from presence.schema.common import (
    AgentId,
    Capacity,
    CenterId,
    ChannelCap,
    FieldError,
    Name,
    OptionalQueueName,
    QueueName,
    QueuePriority,
    Ratio,
    Seconds,
    Shape,
    ShortText,
    SkillName,
    Skills,
    Weight,
)

Strategy = Literal["most_available", "least_active", "longest_idle"]
STRATEGIES: Final[tuple[str, ...]] = get_args(Strategy)

# the identity a PUT body may repeat: the path names the item, so a client
# need not send it (OpenAPI readOnly), and one that does must send the same
_FROM_PATH: Final = Meta(extra_json_schema={"readOnly": True})


class AgentSettings(Shape, kw_only=True):
    """An agent's profile."""

    name: Annotated[ShortText, Meta(description="the name shown to supervisors (the id if absent)")] | (
        UnsetType
    ) = UNSET
    capacity: Capacity = 100
    skills: Skills = msgspec.field(default_factory=dict)
    queues: list[QueueName] = msgspec.field(default_factory=list)
    extension: Annotated[str, Meta(description="the agent's phone extension or SIP address")] = ""


class AgentInput(AgentSettings, kw_only=True):
    """The body of ``PUT /api/v1/agents/{agent_id}``."""

    id: Annotated[AgentId, _FROM_PATH, Meta(description="the agent id of the path, if sent")] | UnsetType = (
        UNSET
    )


class RelaxStep(Shape, kw_only=True):
    """One skill-relaxation step: after `after` seconds waiting, an item's
    required levels are lowered by `lower` (not below 1) and the `drop`
    skills stop being required. Steps add up, in the order of `after`."""

    after: Annotated[Seconds, Meta(description="seconds waited before this step, from 0 to 86400")]
    lower: Annotated[int, Meta(ge=0, le=9, description="levels to lower by, from 0 to 9")] = 0
    drop: list[SkillName] = msgspec.field(default_factory=list)


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ClockTime = Annotated[
    str,
    Meta(
        pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$",
        description="a time of day, HH:MM from 00:00 to 24:00 (the end of the day)",
    ),
]
HolidayDate = Annotated[date, Meta(description="a date, YYYY-MM-DD")]
# the names zoneinfo knows (the system's database, else the tzdata wheel), built at import
_ZONES: Any = Literal[("", *sorted(available_timezones()))]
TimeZoneName: Any = Annotated[
    _ZONES,
    Meta(description="an IANA time zone such as Asia/Tokyo (empty: the center's, PRESENCE_TIMEZONE)"),
]
AfterHours = Literal["queue", "overflow", "refuse"]
ClosedMessage = Annotated[
    str,
    Meta(
        max_length=500,
        description="what the IVR tells a caller refused while closed (at most 500 characters)",
    ),
]
# The placeholders a CRM link may hold, filled in by the pages from the item
CRM_PLACEHOLDERS: Final = (
    "customer.id",
    "customer.name",
    "customer.phone",
    "customer.email",
    "case.id",
    "work.id",
    "queue",
    "channel",
)
_KNOWN = "|".join(re.escape(p) for p in CRM_PLACEHOLDERS)
CrmUrl = Annotated[
    str,
    Meta(
        max_length=2000,
        # only the known placeholders between braces, and no other brace
        pattern=rf"^(https?://([^{{}}]|\{{({_KNOWN})\}})*)?$",
        description="a link to the customer or case in the team's CRM or knowledge base: an http(s) URL "
        "with placeholders such as {customer.id} or {case.id} (empty: none)",
    ),
]


class OpenHours(Shape, kw_only=True):
    """A queue is open on `days` from `open` to `close` (its time zone's
    clock). A `close` at or before `open` is on the next day (a night shift,
    22:00-06:00); the same time is 24 hours."""

    days: Annotated[list[Weekday], Meta(min_length=1)]
    open: ClockTime
    close: ClockTime


class QueueSettings(Shape, kw_only=True):
    """A queue's settings."""

    title: Annotated[str, Meta(description="the name shown on the pages (the queue name if empty)")] = ""
    strategy: Strategy = "most_available"
    push_timeout: Annotated[Seconds, Meta(description="seconds an agent has to accept an offer")] = 30.0
    auto_accept: bool = False
    service_level_seconds: Seconds = 20.0
    service_level_target: Ratio = 0.8
    priority: QueuePriority = 0
    wrapup_seconds: Annotated[Seconds, Meta(description="most seconds of wrap-up after an item")] = 120.0
    overflow_to: (
        Annotated[OptionalQueueName, Meta(description="the queue whose agents also get waiting items")] | None
    ) = ""
    overflow_after: Annotated[
        Seconds, Meta(description="seconds waited before overflow (0: never by time)")
    ] = 0.0
    overflow_when_unstaffed: bool = False
    relax: list[RelaxStep] = msgspec.field(default_factory=list)
    # business hours (presence/hours.py): none at all is always open
    time_zone: TimeZoneName = ""
    hours: list[OpenHours] = msgspec.field(default_factory=list)
    holidays: Annotated[
        list[HolidayDate], Meta(max_length=400, description="whole days closed (at most 400)")
    ] = msgspec.field(default_factory=list)
    after_hours: Annotated[
        AfterHours,
        Meta(
            description="outside hours: queue (keep queuing), overflow (new items go to "
            "after_hours_queue) or refuse (voice intake is refused with closed_message)"
        ),
    ] = "queue"
    after_hours_queue: (
        Annotated[OptionalQueueName, Meta(description="where new items go outside hours (overflow)")] | None
    ) = ""
    closed_message: ClosedMessage = ""
    crm_url: CrmUrl = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.after_hours == "overflow" and not self.after_hours_queue:
            raise FieldError("after_hours_queue", "is required when after_hours is overflow")

    @classmethod
    def json_schema_extra(cls) -> dict[str, Any]:
        # the rule of __post_init__, stated in the published schema
        # (as anyOf, which generators honour: either no overflow, or a queue to overflow to)
        named = {"after_hours_queue": {"type": "string", "minLength": 1}}
        rule = {
            "anyOf": [
                {"properties": {"after_hours": {"enum": ["queue", "refuse"]}}},
                {"required": ["after_hours_queue"], "properties": named},
            ]
        }
        base = super().json_schema_extra()
        return {"allOf": [base, rule]} if base else rule


class QueueInput(QueueSettings, kw_only=True):
    """The body of ``PUT /api/v1/queues/{name}``."""

    name: Annotated[QueueName, _FROM_PATH, Meta(description="the queue name of the path, if sent")] | (
        UnsetType
    ) = UNSET


# -- answers -------------------------------------------------------------------------


def answer_of(name: str, settings: type[Struct], first: list[tuple[str, Any]], doc: str) -> type[Struct]:
    """The answer that carries every field of `settings` (each required),
    after the `first` fields: derived, so a setting cannot go missing."""
    fields: list[tuple[str, Any]] = [
        *first,
        *((f.encode_name, _base(f.type)) for f in msgspec.structs.fields(settings)),
    ]
    return msgspec.defstruct(name, fields, kw_only=True, module=__name__, namespace={"__doc__": doc})


def _base(tp: Any) -> Any:
    # a setting that may be unset in a body is always there in an answer
    options = [a for a in get_args(tp) if a is not UnsetType]
    return options[0] if UnsetType in get_args(tp) and len(options) == 1 else tp


Agent = answer_of(
    "Agent",
    AgentSettings,
    [("id", AgentId)],
    "An agent's profile (and, when listed or read, its live view).",
)
# the profile with the live view (`GET /api/v1/agents...`)
AgentRead = msgspec.defstruct(
    "AgentRead",
    [("live", dict[str, Any] | None)],
    bases=(Agent,),
    kw_only=True,
    module=__name__,
    namespace={"__doc__": "An agent's profile and its live view (null while never seen)."},
)
Queue = answer_of("Queue", QueueSettings, [("name", QueueName)], "A queue's settings.")


class AgentList(Struct, kw_only=True):
    agents: list[AgentRead]  # type: ignore[valid-type]


class QueueList(Struct, kw_only=True):
    queues: list[Queue]  # type: ignore[valid-type]


class StatusDef(Struct, kw_only=True):
    """A presence status of the center (from the center file)."""

    name: Name
    routable: bool
    reasons: list[str]


class StatusList(Struct, kw_only=True):
    statuses: list[StatusDef]


class ChannelDef(Struct, kw_only=True):
    """A channel of the center: its weight against an agent's capacity and
    its cap (most items of it one agent holds at once; 0: no cap)."""

    name: Name
    weight: Weight
    cap: ChannelCap


class ChannelList(Struct, kw_only=True):
    channels: list[ChannelDef]


class CenterSummary(Struct, kw_only=True):
    """A center (workspace) of the deployment."""

    id: CenterId
    name: str
    # bumped by every apply of its document
    revision: int
    # the deployment's own center (its center file): tokens without a center act on it
    default: bool


class CenterList(Struct, kw_only=True):
    centers: list[CenterSummary]


# -- the waiting list (GET /api/v1/queues/{name}/waiting; the wallboard's `queues` message) --


class WaitingCustomer(Struct, kw_only=True):
    """Who a waiting item is about: the short fields of its posted customer
    (each at most 200 bytes), those it has."""

    id: str | int | None = None
    name: str | int | None = None
    phone: str | int | None = None
    email: str | int | None = None


class WaitingItem(Struct, kw_only=True):
    """An item of a queue's waiting list, in routing order."""

    work_id: str
    channel: str
    priority: int
    created: Annotated[
        int, Meta(description="when it arrived, in ms since the Unix epoch (its age runs from here)")
    ]
    subject: str | None = None  # at most 200 bytes
    customer: WaitingCustomer | None = None
    overflow_to: str | None = None  # it overflowed: that queue's agents may get it too
    handed_over: bool | None = None  # it carries a handoff note (a transfer to the queue)


class WaitingList(Struct, kw_only=True):
    """The items waiting in a queue, in routing order (at most `WAITING_MAX`)."""

    queue: QueueName
    waiting: int  # how many wait in all
    items: list[WaitingItem]


WAITING_MAX: Final = 500
