"""The center's configuration: statuses, channels, queues and agents.

This module owns the model of that configuration (`Center` and its parts)
and how it is built from the center file or an admin API body. Their
*shapes* and every rule about one value are the schema's
(``presence/schema/center.py``, ``presence/schema/admin.py``), so one rule
rejects a bad capacity wherever it comes from; what is checked here is what
spans tables (a queue an agent names must exist, a rule must name a status
that is not routable). Errors name the field (`agents[2].skills.billing`)
the way a supervisor would look for it.

Statuses and channels come from the file on every start. Agents and queues are
seeded from the file only when Redis does not know them yet: after that the
admin API owns them and Redis keeps its changes across restarts.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from msgspec import UNSET

from presence.hours import Range, Schedule, minutes
from presence.schema import Invalid, convert, value
from presence.schema.admin import STRATEGIES, AgentInput, AgentSettings, QueueInput, QueueSettings
from presence.schema.center import (
    WEBHOOK_EVENTS,
    CasesSection,
    CenterFile,
    IntakeSection,
    WebhookEntry,
)
from presence.schema.common import AgentId, QueueName

__all__ = ["STRATEGIES", "WEBHOOK_EVENTS", "Invalid"]


@dataclass(frozen=True, slots=True)
class Status:
    name: str
    routable: bool = False
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    weight: int
    # Most items of this channel one agent may hold at once (0 = no cap).
    cap: int = 0


@dataclass(frozen=True, slots=True)
class Relax:
    """One skill-relaxation step: after `after` seconds waiting, the item's
    required levels are lowered by `lower` (not below 1) and the `drop`
    skills stop being required. Steps add up."""

    after: float
    lower: int = 0
    drop: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"after": self.after, "lower": self.lower, "drop": list(self.drop)}


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@dataclass(frozen=True, slots=True)
class Queue:
    name: str
    strategy: str = "most_available"
    push_timeout: float = 30.0
    auto_accept: bool = False
    service_level_seconds: float = 20.0
    service_level_target: float = 0.8
    priority: int = 0
    wrapup_seconds: float = 120.0
    title: str = ""
    # Overflow (store/lua/queue_escalate.lua): after `overflow_after` seconds
    # (0 = never by time), or while no member is signed in when
    # `overflow_when_unstaffed`, a waiting item is also offered to
    # `overflow_to`'s agents.
    overflow_to: str = ""
    overflow_after: float = 0.0
    overflow_when_unstaffed: bool = False
    # Skill relaxation steps, by seconds waited.
    relax: tuple[Relax, ...] = ()
    # Business hours (presence/hours.py; none: always open) in `time_zone`
    # ("": the center's), and what the queue does outside them: "queue"
    # (keep queuing), "overflow" (new items go to `after_hours_queue`) or
    # "refuse" (voice intake refused with `closed_message`).
    time_zone: str = ""
    hours: tuple[Range, ...] = ()
    holidays: tuple[str, ...] = ()
    after_hours: str = "queue"
    after_hours_queue: str = ""
    closed_message: str = ""
    # A link to the customer or case in the team's CRM, with placeholders
    # ({customer.id}, {case.id} ...) that the pages fill in.
    crm_url: str = ""

    def schedule(self, default_zone: str) -> Schedule:
        return Schedule(
            self.time_zone or default_zone,
            self.hours,
            frozenset(date.fromisoformat(d) for d in self.holidays),
        )

    def escalate_at(self) -> float:
        """Seconds after intake of an item's first overflow/relaxation check (-1: none)."""
        times = [r.after for r in self.relax]
        if self.overflow_to:
            if self.overflow_when_unstaffed:
                times.append(0.0)
            if self.overflow_after > 0:
                times.append(self.overflow_after)
        return min(times) if times else -1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title or self.name,
            "overflow_to": self.overflow_to,
            "overflow_after": self.overflow_after,
            "overflow_when_unstaffed": self.overflow_when_unstaffed,
            "relax": [r.to_json() for r in self.relax],
            "time_zone": self.time_zone,
            "hours": [
                {"days": list(r.days), "open": _clock(r.open), "close": _clock(r.close)} for r in self.hours
            ],
            "holidays": list(self.holidays),
            "after_hours": self.after_hours,
            "after_hours_queue": self.after_hours_queue,
            "closed_message": self.closed_message,
            "crm_url": self.crm_url,
            "strategy": self.strategy,
            "push_timeout": self.push_timeout,
            "auto_accept": self.auto_accept,
            "service_level_seconds": self.service_level_seconds,
            "service_level_target": self.service_level_target,
            "priority": self.priority,
            "wrapup_seconds": self.wrapup_seconds,
        }


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    name: str = ""
    capacity: int = 100
    skills: dict[str, int] = field(default_factory=dict)
    queues: tuple[str, ...] = ()
    extension: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name or self.id,
            "capacity": self.capacity,
            "skills": dict(self.skills),
            "queues": list(self.queues),
            "extension": self.extension,
        }


@dataclass(frozen=True, slots=True)
class Rules:
    """Center-wide presence and offer rules."""

    login_status: str = "Away"
    offline_status: str = "Offline"
    missed_offers_limit: int = 3
    missed_offers_status: str = "Away"
    missed_offers_reason: str = "missed offers"


@dataclass(frozen=True, slots=True)
class Center:
    id: str
    name: str
    statuses: dict[str, Status]
    channels: dict[str, Channel]
    queues: dict[str, Queue]
    agents: dict[str, Agent]
    rules: Rules
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    intake: Intake = field(default_factory=lambda: Intake())
    cases: CaseConfig = field(default_factory=lambda: CaseConfig())
    webhooks: tuple[Webhook, ...] = ()

    def status_json(self) -> list[dict[str, Any]]:
        return [
            {"name": s.name, "routable": s.routable, "reasons": list(s.reasons)}
            for s in self.statuses.values()
        ]

    def channel_json(self) -> list[dict[str, Any]]:
        return [{"name": c.name, "weight": c.weight, "cap": c.cap} for c in self.channels.values()]


DEFAULT_CHANNELS = {
    "voice": (100, 1),
    "video": (100, 1),
    "chat": (25, 0),
    "sms": (20, 0),
    "social": (20, 0),
    "email": (10, 0),
    "web": (10, 0),
}


def agent_of(agent_id: str, body: AgentSettings) -> Agent:
    """The `Agent` a decoded body (the API's or the file's) describes."""
    if isinstance(body, AgentInput) and body.id is not UNSET and body.id != agent_id:
        raise Invalid("id", f"must match the agent id in the path ({agent_id!r})", ("id",))
    return Agent(
        id=agent_id,
        name=agent_id if body.name is UNSET else body.name,
        capacity=body.capacity,
        skills=dict(body.skills),
        queues=tuple(body.queues),
        extension=body.extension,
    )


def queue_of(name: str, body: QueueSettings) -> Queue:
    """The `Queue` a decoded body (the API's or the file's) describes."""
    if isinstance(body, QueueInput) and body.name is not UNSET and body.name != name:
        raise Invalid("name", f"must match the queue name in the path ({name!r})", ("name",))
    return Queue(
        name=name,
        title=body.title,
        strategy=body.strategy,
        push_timeout=float(body.push_timeout),
        auto_accept=body.auto_accept,
        service_level_seconds=float(body.service_level_seconds),
        service_level_target=float(body.service_level_target),
        priority=body.priority,
        wrapup_seconds=float(body.wrapup_seconds),
        overflow_to=body.overflow_to or "",
        overflow_after=float(body.overflow_after),
        overflow_when_unstaffed=body.overflow_when_unstaffed,
        # steps apply in the order of their time, however they were listed
        relax=tuple(
            Relax(float(r.after), r.lower, tuple(r.drop)) for r in sorted(body.relax, key=lambda r: r.after)
        ),
        time_zone=body.time_zone,
        hours=tuple(Range(tuple(h.days), minutes(h.open), minutes(h.close)) for h in body.hours),
        holidays=tuple(sorted({d.isoformat() for d in body.holidays})),
        after_hours=body.after_hours,
        after_hours_queue=body.after_hours_queue or "",
        closed_message=body.closed_message,
        crm_url=body.crm_url,
    )


def parse_agent(agent_id: str, data: Any) -> Agent:
    """An admin API body (decoded JSON) as the agent `agent_id`."""
    return agent_of(value(agent_id, AgentId, "id"), convert(data, AgentInput))


def parse_queue(name: str, data: Any) -> Queue:
    """An admin API body (decoded JSON) as the queue `name`."""
    return queue_of(value(name, QueueName, "name"), convert(data, QueueInput))


def parse_center(data: dict[str, Any]) -> Center:
    """A center file's tables (as `tomllib` reads them) as the `Center`."""
    f = convert(data, CenterFile)
    statuses = {s.name: Status(s.name, s.routable, tuple(s.reasons)) for s in f.statuses}
    if not statuses:
        statuses = {
            "Available": Status("Available", True),
            "Away": Status("Away", False, ("missed offers",)),
            "Break": Status("Break", False, ("Coffee", "Meeting", "Training")),
            "Lunch": Status("Lunch", False),
            "Offline": Status("Offline", False),
        }
    r = f.rules
    rules = Rules(
        login_status=r.login_status,
        offline_status=r.offline_status,
        missed_offers_limit=r.missed_offers_limit,
        missed_offers_status=r.missed_offers_status,
        missed_offers_reason=r.missed_offers_reason,
    )
    for key in ("login_status", "offline_status", "missed_offers_status"):
        value = getattr(rules, key)
        if value not in statuses:
            raise Invalid.at(("rules", key), f"names unknown status {value!r}")
        if statuses[value].routable:
            raise Invalid.at(("rules", key), f"must name a status that is not routable ({value!r} is)")
    reason = rules.missed_offers_reason
    mstatus = statuses[rules.missed_offers_status]
    if reason and mstatus.reasons and reason not in mstatus.reasons:
        statuses[mstatus.name] = Status(mstatus.name, mstatus.routable, (*mstatus.reasons, reason))

    channels = {n: Channel(n, w, c) for n, (w, c) in DEFAULT_CHANNELS.items()}
    for name, c in f.channels.items():
        base = channels.get(name)
        channels[name] = Channel(
            name=name,
            weight=c.weight if c.weight is not UNSET else (base.weight if base else 10),
            cap=c.cap if c.cap is not UNSET else (base.cap if base else 0),
        )

    queues = {q.name: queue_of(q.name, q) for q in f.queues}
    for i, q in enumerate(queues.values()):
        if q.after_hours_queue and q.after_hours_queue not in queues:
            raise Invalid.at(
                ("queues", i, "after_hours_queue"), f"names unknown queue {q.after_hours_queue!r}"
            )
    agents: dict[str, Agent] = {}
    for i, a in enumerate(f.agents):
        agent = agent_of(a.id, a)
        for j, qn in enumerate(agent.queues):
            if qn not in queues:
                raise Invalid.at(("agents", i, "queues", j), f"names unknown queue {qn!r}")
        agents[agent.id] = agent

    return Center(
        id=f.center.id,
        name=f.center.id if f.center.name is UNSET else f.center.name,
        statuses=statuses,
        channels=channels,
        queues=queues,
        agents=agents,
        rules=rules,
        raw=data,
        intake=_intake(f.intake, queues),
        cases=_cases(f.cases),
        webhooks=_webhooks(f.webhooks),
    )


def load_center(path: Path | None) -> Center:
    """Read and validate the center file (or the shipped example when None)."""
    if path is None:
        text = resources.files("presence").joinpath("center.example.toml").read_text("utf-8")
        where = "presence/center.example.toml"
    else:
        text = path.read_text("utf-8")
        where = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise Invalid(where, f"is not valid TOML: {exc}") from None
    try:
        return parse_center(data)
    except Invalid as exc:
        raise Invalid(f"{where}: {exc.field}", exc.message, exc.path) from None


# -- intake, cases and webhooks (presence/http/channels/, presence/services/)


@dataclass(frozen=True, slots=True)
class Intake:
    """Where each channel adapter sends new cases (`[intake.*]` tables)."""

    voice_queue: str = ""
    ivr: dict[str, str] = field(default_factory=dict)  # IVR digits -> queue
    numbers: dict[str, str] = field(default_factory=dict)  # dialled number -> queue
    email_queue: str = ""
    addresses: dict[str, str] = field(default_factory=dict)  # lowercased to-address -> queue
    form_queue: str = ""
    categories: dict[str, str] = field(default_factory=dict)  # form category -> queue
    form_rate_limit: int = 5  # posts per IP per window (0 = no limit)
    form_rate_window: int = 60
    form_honeypot: str = "website"
    messaging: dict[str, str] = field(default_factory=dict)  # channel -> queue


@dataclass(frozen=True, slots=True)
class CaseConfig:
    """Case statuses (`[cases]`): the list, and the roles some of them play."""

    statuses: tuple[str, ...] = ("New", "In progress", "Waiting close", "Closed")
    working: str = "In progress"  # taken when an agent first accepts ("" = stay)
    closed: str = "Closed"
    reopen: str = "New"  # a closed case the customer writes to again
    thread_days: int = 180  # how long reply/conversation references are kept
    survey_days: int = 7  # how long a survey link is valid after completion (0: no surveys)

    @property
    def initial(self) -> str:
        return self.statuses[0]


@dataclass(frozen=True, slots=True)
class Webhook:
    """One outbound webhook (`[[webhooks]]`), its secret resolved (an inline
    one is also in the registry's document; a secret_env one is not)."""

    name: str
    url: str
    secret: str
    events: tuple[str, ...] = ("*",)
    timeout: float = 5.0
    max_backoff: float = 60.0
    # deliveries pending on a silent process are taken over after this long
    # (0: max(30, 3 x timeout)); longer than any attempt can take
    claim_after: float = 0.0


def _queues_named(table: dict[str, str], where: tuple[str | int, ...], queues: dict[str, Queue]) -> None:
    for k, v in table.items():
        if queues and v not in queues:
            raise Invalid.at((*where, k), f"names unknown queue {v!r}")


def _intake(f: IntakeSection, queues: dict[str, Queue]) -> Intake:
    first = next(iter(queues), "support")

    def default(queue: str | Any, where: tuple[str, ...]) -> str:
        if queue is UNSET:
            return first
        _queues_named({where[-1]: queue}, where[:-1], queues)
        return str(queue)

    voice, email, forms, msg = f.voice, f.email, f.forms, f.messaging
    for table, where in (
        (voice.ivr, ("intake", "voice", "ivr")),
        (voice.numbers, ("intake", "voice", "numbers")),
        (email.addresses, ("intake", "email", "addresses")),
        (forms.categories, ("intake", "forms", "categories")),
        (msg.queues, ("intake", "messaging", "queues")),
    ):
        _queues_named(table, where, queues)
    messaging = dict(msg.queues)
    for ch in ("chat", "sms", "social"):
        messaging.setdefault(ch, first)
    return Intake(
        voice_queue=default(voice.queue, ("intake", "voice", "queue")),
        ivr=dict(voice.ivr),
        numbers=dict(voice.numbers),
        email_queue=default(email.queue, ("intake", "email", "queue")),
        addresses={k.lower(): v for k, v in email.addresses.items()},
        form_queue=default(forms.queue, ("intake", "forms", "queue")),
        categories=dict(forms.categories),
        form_rate_limit=forms.rate_limit,
        form_rate_window=forms.rate_window,
        form_honeypot=forms.honeypot,
        messaging=messaging,
    )


def _cases(f: CasesSection) -> CaseConfig:
    base = CaseConfig()
    statuses = tuple(f.statuses)
    if len(set(statuses)) != len(statuses):
        raise Invalid.at(("cases", "statuses"), "must not list a status twice")
    out: dict[str, str] = {}
    for role, dflt in (("working", base.working), ("closed", statuses[-1]), ("reopen", statuses[0])):
        if role == "working" and f.working is UNSET and dflt not in statuses:
            dflt = statuses[1]
        given = getattr(f, role)
        chosen = dflt if given is UNSET else given
        if chosen and chosen not in statuses:
            raise Invalid.at(("cases", role), f"names {chosen!r}, which is not in cases.statuses")
        out[role] = chosen
    return CaseConfig(
        statuses=statuses,
        working=out["working"],
        closed=out["closed"] or statuses[-1],
        reopen=out["reopen"] or statuses[0],
        thread_days=f.thread_days,
        survey_days=f.survey_days,
    )


def _webhooks(entries: list[WebhookEntry]) -> tuple[Webhook, ...]:
    hooks: list[Webhook] = []
    for i, h in enumerate(entries):
        if any(x.name == h.name for x in hooks):
            raise Invalid.at(("webhooks", i, "name"), f"webhook {h.name!r} is defined twice")
        secret = h.secret
        if h.secret_env is not UNSET:
            secret = os.environ.get(h.secret_env) or UNSET
            if secret is UNSET:
                raise Invalid.at(("webhooks", i, "secret_env"), f"names {h.secret_env}, which is not set")
        if secret is UNSET:
            raise Invalid.at(
                ("webhooks", i, "secret"), "is required (at least 16 characters), or give secret_env"
            )
        if len(secret) < 16:
            raise Invalid.at(("webhooks", i, "secret"), "must be at least 16 characters")
        hooks.append(
            Webhook(
                name=h.name,
                url=h.url,
                secret=secret,
                events=tuple(h.events),
                timeout=float(h.timeout),
                max_backoff=float(h.max_backoff),
                claim_after=float(h.claim_after),
            )
        )
    return tuple(hooks)
