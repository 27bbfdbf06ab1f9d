"""The center file (TOML): every section and table, as `CenterFile`.

The file is read with `tomllib` and converted to `CenterFile` in one pass
(`presence.schema.convert`), so a wrong type, a value out of range or an
unknown key is refused naming its place (``agents[2].skills.english``).
What one value cannot say on its own (a queue an agent names must exist, a
rule must name a status that is not routable, a secret read from the
environment) is checked by ``presence/center.py`` when it builds the
`Center` from these sections. docs/configuration.md is the readable
reference; a test checks that it names every field here.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, get_args

import msgspec
from msgspec import UNSET, Meta, UnsetType

from presence.schema.admin import AgentSettings, QueueSettings
from presence.schema.common import (
    AgentId,
    CenterId,
    ChannelCap,
    ChannelName,
    Name,
    QueueName,
    Shape,
    Weight,
)


class CenterHead(Shape, kw_only=True):
    """``[center]``: the center's id (its Redis keys' hash tag) and name."""

    id: CenterId = "default"
    name: str | UnsetType = UNSET


class RulesSection(Shape, kw_only=True):
    """``[rules]``: center-wide presence and offer rules."""

    login_status: Annotated[str, Meta(description="the status an agent signs in to")] = "Away"
    offline_status: Annotated[str, Meta(description="the status of an agent with no socket")] = "Offline"
    missed_offers_limit: Annotated[
        int, Meta(ge=0, le=1000, description="missed offers in a row before the agent is moved (0: never)")
    ] = 3
    missed_offers_status: str = "Away"
    missed_offers_reason: str = "missed offers"


class StatusEntry(Shape, kw_only=True):
    """``[[statuses]]``: one presence status."""

    name: Name
    routable: bool = False
    reasons: list[str] = msgspec.field(default_factory=list)


class ChannelEntry(Shape, kw_only=True):
    """``[channels.<name>]``: a channel's weight and cap (a known channel keeps
    its default for what is left out; a new one defaults to 10 and no cap)."""

    weight: Weight | UnsetType = UNSET
    cap: ChannelCap | UnsetType = UNSET


class QueueEntry(QueueSettings, kw_only=True):
    """``[[queues]]``: one queue."""

    name: QueueName


class AgentEntry(AgentSettings, kw_only=True):
    """``[[agents]]``: one agent (seeded once; the admin API owns it after)."""

    id: AgentId


QueueMap = dict[str, QueueName]


class VoiceIntake(Shape, kw_only=True):
    """``[intake.voice]``: the default queue, IVR digits and dialled numbers to queues."""

    queue: QueueName | UnsetType = UNSET
    ivr: QueueMap = msgspec.field(default_factory=dict)
    numbers: QueueMap = msgspec.field(default_factory=dict)


class EmailIntake(Shape, kw_only=True):
    """``[intake.email]``: the default queue, and to-addresses to queues."""

    queue: QueueName | UnsetType = UNSET
    addresses: QueueMap = msgspec.field(default_factory=dict)


class FormsIntake(Shape, kw_only=True):
    """``[intake.forms]``: the web form's default queue, categories to queues and spam rules."""

    queue: QueueName | UnsetType = UNSET
    categories: QueueMap = msgspec.field(default_factory=dict)
    rate_limit: Annotated[
        int, Meta(ge=0, le=100_000, description="posts per address per window (0: none)")
    ] = 5
    rate_window: Annotated[int, Meta(ge=1, le=86400, description="seconds of the rate window")] = 60
    honeypot: Annotated[str, Meta(description="the hidden field a person leaves empty")] = "website"


class MessagingIntake(Shape, kw_only=True):
    """``[intake.messaging]``: the queue of each messaging channel (chat, sms, social, ...)."""

    queues: QueueMap = msgspec.field(default_factory=dict)


class IntakeSection(Shape, kw_only=True):
    """``[intake.*]``: where each channel adapter sends new cases."""

    voice: VoiceIntake = msgspec.field(default_factory=VoiceIntake)
    email: EmailIntake = msgspec.field(default_factory=EmailIntake)
    forms: FormsIntake = msgspec.field(default_factory=FormsIntake)
    messaging: MessagingIntake = msgspec.field(default_factory=MessagingIntake)


CaseStatusName = Annotated[
    str, Meta(min_length=1, max_length=64, description="a case status of 1-64 characters")
]


class CasesSection(Shape, kw_only=True):
    """``[cases]``: the case statuses, and the roles some of them play."""

    statuses: Annotated[
        list[CaseStatusName], Meta(min_length=2, description="at least two case statuses, in order")
    ] = msgspec.field(default_factory=lambda: ["New", "In progress", "Waiting close", "Closed"])
    working: str | UnsetType = UNSET
    closed: str | UnsetType = UNSET
    reopen: str | UnsetType = UNSET
    thread_days: Annotated[int, Meta(ge=1, le=3650, description="days reply references are kept, 1-3650")] = (
        180
    )


WebhookEvent = Literal[
    "*",
    "work.assigned",
    "work.transferred",
    "work.completed",
    "work.abandoned",
    "case.created",
    "case.status",
    "case.comment",
    "case.message",
    "call.control",
    "call.ended",
]
# every event a webhook can subscribe to ("*" is all of them)
WEBHOOK_EVENTS: Final[tuple[str, ...]] = get_args(WebhookEvent)[1:]


class WebhookEntry(Shape, kw_only=True):
    """``[[webhooks]]``: one outbound webhook; the secret never reaches Redis."""

    name: Name
    url: Annotated[str, Meta(pattern=r"^https?://", description="an http:// or https:// URL")]
    secret: Annotated[str, Meta(min_length=16, description="a string of at least 16 characters")] | (
        UnsetType
    ) = UNSET
    secret_env: Annotated[str, Meta(description="an environment variable holding the secret")] | (
        UnsetType
    ) = UNSET
    events: list[WebhookEvent] = msgspec.field(default_factory=lambda: ["*"])
    timeout: Annotated[float, Meta(ge=0.1, le=120, description="seconds from 0.1 to 120")] = 5.0
    max_backoff: Annotated[float, Meta(ge=0.1, le=3600, description="seconds from 0.1 to 3600")] = 60.0
    claim_after: Annotated[
        float, Meta(ge=0, le=86400, description="seconds before a silent process's deliveries are taken over")
    ] = 0.0


class CenterFile(Shape, kw_only=True):
    """The center file."""

    center: CenterHead = msgspec.field(default_factory=CenterHead)
    rules: RulesSection = msgspec.field(default_factory=RulesSection)
    statuses: list[StatusEntry] = msgspec.field(default_factory=list)
    channels: dict[ChannelName, ChannelEntry] = msgspec.field(default_factory=dict)
    queues: list[QueueEntry] = msgspec.field(default_factory=list)
    agents: list[AgentEntry] = msgspec.field(default_factory=list)
    intake: IntakeSection = msgspec.field(default_factory=IntakeSection)
    cases: CasesSection = msgspec.field(default_factory=CasesSection)
    webhooks: list[WebhookEntry] = msgspec.field(default_factory=list)
