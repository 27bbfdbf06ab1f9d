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

from typing import Annotated, Any, Final, Literal, get_args

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
    name: Annotated[str, Meta(description="the center's name (its id if absent)")] | UnsetType = UNSET


class RulesSection(Shape, kw_only=True):
    """``[rules]``: center-wide presence and offer rules."""

    login_status: Annotated[str, Meta(description="the status an agent signs in to")] = "Away"
    offline_status: Annotated[str, Meta(description="the status of an agent with no socket")] = "Offline"
    missed_offers_limit: Annotated[
        int, Meta(ge=0, le=1000, description="missed offers in a row before the agent is moved (0: never)")
    ] = 3
    missed_offers_status: Annotated[
        str, Meta(description="the status an agent who missed them is moved to")
    ] = "Away"
    missed_offers_reason: Annotated[str, Meta(description="the reason given with that status")] = (
        "missed offers"
    )


class StatusEntry(Shape, kw_only=True):
    """``[[statuses]]``: one presence status."""

    name: Name
    routable: bool = False
    reasons: list[str] = msgspec.field(default_factory=list)


_WEIGHT: Final = "capacity units one item takes, 1-100000 (a known channel's default, else 10)"
_CAP: Final = "most items one agent holds at once, 0 (no cap) to 1000 (a known channel's default, else 0)"


class ChannelEntry(Shape, kw_only=True):
    """``[channels.<name>]``: a channel's weight and cap (a known channel keeps
    its default for what is left out; a new one defaults to 10 and no cap)."""

    weight: Annotated[Weight, Meta(description=_WEIGHT)] | UnsetType = UNSET
    cap: Annotated[ChannelCap, Meta(description=_CAP)] | UnsetType = UNSET


class QueueEntry(QueueSettings, kw_only=True):
    """``[[queues]]``: one queue."""

    name: QueueName


class AgentEntry(AgentSettings, kw_only=True):
    """``[[agents]]``: one agent (seeded once; the admin API owns it after)."""

    id: AgentId


QueueMap = dict[str, QueueName]
DefaultQueue = Annotated[
    QueueName, Meta(description="the queue new cases go to (the file's first queue if absent)")
]


class VoiceIntake(Shape, kw_only=True):
    """``[intake.voice]``: the default queue, IVR digits and dialled numbers to queues."""

    queue: DefaultQueue | UnsetType = UNSET
    ivr: QueueMap = msgspec.field(default_factory=dict)
    numbers: QueueMap = msgspec.field(default_factory=dict)


class EmailIntake(Shape, kw_only=True):
    """``[intake.email]``: the default queue, and to-addresses to queues."""

    queue: DefaultQueue | UnsetType = UNSET
    addresses: QueueMap = msgspec.field(default_factory=dict)


class FormsIntake(Shape, kw_only=True):
    """``[intake.forms]``: the web form's default queue, categories to queues and spam rules."""

    queue: DefaultQueue | UnsetType = UNSET
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


_WORKING: Final = (
    'taken when an agent first accepts ("" to stay; "In progress" or the second status if absent)'
)
_REOPEN: Final = "a closed case the customer writes to again (the first status if absent)"


class CasesSection(Shape, kw_only=True):
    """``[cases]``: the case statuses, and the roles some of them play."""

    statuses: Annotated[
        list[CaseStatusName],
        Meta(
            min_length=2,
            description="at least two case statuses of 1-64 characters, in order (New, In progress, "
            "Waiting close, Closed)",
        ),
    ] = msgspec.field(default_factory=lambda: ["New", "In progress", "Waiting close", "Closed"])
    working: Annotated[str, Meta(description=_WORKING)] | UnsetType = UNSET
    closed: Annotated[str, Meta(description="the status that closes a case (the last one if absent)")] | (
        UnsetType
    ) = UNSET
    reopen: Annotated[str, Meta(description=_REOPEN)] | UnsetType = UNSET
    thread_days: Annotated[int, Meta(ge=1, le=3650, description="days reply references are kept, 1-3650")] = (
        180
    )
    survey_days: Annotated[
        int,
        Meta(
            ge=0,
            le=365,
            description="days a satisfaction survey link is valid after completion, 0-365 (0: none)",
        ),
    ] = 7


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
    "reply",
    "csat",
    "call.control",
    "call.ended",
]
# every event a webhook can subscribe to ("*" is all of them)
WEBHOOK_EVENTS: Final[tuple[str, ...]] = get_args(WebhookEvent)[1:]


class WebhookEntry(Shape, kw_only=True):
    """``[[webhooks]]``: one outbound webhook. An inline secret is kept in
    Redis with the center's document (the registry every process signs
    from); with secret_env only the variable's name is."""

    name: Name
    url: Annotated[str, Meta(pattern=r"^https?://", description="an http:// or https:// URL")]
    secret: Annotated[str, Meta(min_length=16, description="at least 16 characters (or give secret_env)")] | (
        UnsetType
    ) = UNSET
    secret_env: Annotated[str, Meta(description="an environment variable holding the secret")] | (
        UnsetType
    ) = UNSET
    events: Annotated[
        list[WebhookEvent],
        Meta(
            description="the events sent: * (all, if absent) or some of "
            + ", ".join(get_args(WebhookEvent)[1:])
        ),
    ] = msgspec.field(default_factory=lambda: ["*"])
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


# -- the reference (docs/configuration.md) ------------------------------------------------


def reference() -> str:
    """Every table and key of the center file as Markdown, generated from
    `CenterFile` (docs/configuration.md holds it; a test checks they agree).
    ``python -m presence.schema.center`` prints it."""
    _, comps = msgspec.json.schema_components([CenterFile], ref_template="{name}")
    lines = ["| table | key | value | default |", "|---|---|---|---|"]

    def walk(name: str, heading: str, dotted: str) -> None:
        comp = comps[name]
        required = set(comp.get("required", []))
        nested: list[tuple[str, str, str]] = []
        for key, prop in comp["properties"].items():
            sub = _sub_table(prop, key, heading, dotted)
            if sub is not None:
                nested.append(sub)
                continue
            default = "required" if key in required else _default(prop)
            lines.append(f"| `{heading}` | `{key}` | {_value(prop)} | {default} |")
        for sub in nested:
            walk(*sub)

    walk("CenterFile", "(top)", "")
    return "\n".join(lines) + "\n"


def _sub_table(prop: dict[str, Any], key: str, heading: str, dotted: str) -> tuple[str, str, str] | None:
    """(component, heading, dotted name) when `prop` is a table of its own,
    or a list or map of tables; None for a plain value."""
    name = f"{dotted}.{key}" if dotted else key
    if isinstance(prop.get("$ref"), str):
        return prop["$ref"], f"[{name}]", name
    items, values = prop.get("items"), prop.get("additionalProperties")
    if prop.get("type") == "array" and isinstance(items, dict) and isinstance(items.get("$ref"), str):
        inside = heading.startswith("[[")
        return items["$ref"], (f"{heading} {key} = [{{…}}]" if inside else f"[[{name}]]"), name
    if prop.get("type") == "object" and isinstance(values, dict) and isinstance(values.get("$ref"), str):
        return values["$ref"], f"[{name}.<name>]", name
    return None


_KINDS: Final = {
    "string": "a string",
    "boolean": "true or false",
    "integer": "a whole number",
    "number": "a number",
}


def _value(prop: dict[str, Any]) -> str:
    desc = prop.get("description")
    if isinstance(desc, str) and desc:
        return desc.replace("|", "\\|")
    if "anyOf" in prop:
        options = [o for o in prop["anyOf"] if o.get("type") != "null"]
        return " or ".join(_value(o) for o in options) + " (or null)"
    if "enum" in prop:
        return "one of " + ", ".join(f"`{v}`" for v in prop["enum"])
    kind = prop.get("type")
    if kind == "array":
        items = prop.get("items", {})
        return "a list of strings" if items == {"type": "string"} else f"a list, each {_value(items)}"
    if kind == "object":
        return f"a table of key to {_value(prop.get('additionalProperties', {}))}"
    return _KINDS.get(str(kind), "a value")


def _default(prop: dict[str, Any]) -> str:
    if "default" not in prop:
        return "—"
    return f"`{msgspec.json.encode(prop['default']).decode()}`"


if __name__ == "__main__":
    print(reference(), end="")
