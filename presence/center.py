"""The center's configuration: statuses, channels, queues and agents.

This module owns the *shape* of that configuration and its validation, for
both the TOML file and the admin API's JSON bodies, so that one rule rejects a
bad capacity wherever it comes from. Validation errors name the field
(`agents[2].skills.billing`) the way a supervisor would look for it.

Statuses and channels come from the file on every start. Agents and queues are
seeded from the file only when Redis does not know them yet: after that the
admin API owns them and Redis keeps its changes across restarts.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

STRATEGIES = ("most_available", "least_active", "longest_idle")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
CENTER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
# Item priority is folded into one sorted-set score together with the arrival
# time (wait_score in store/lua/_lib_queue.lua), which keeps it exact within this range.
PRIORITY_MIN, PRIORITY_MAX = -99, 99


class Invalid(ValueError):
    """A configuration value is wrong; `field` says which one."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


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


def _expect(obj: Any, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    # bool is an int in Python; a capacity of `true` is a mistake, not 1.
    if (
        isinstance(obj, bool)
        and kind is not bool
        and bool not in (kind if isinstance(kind, tuple) else (kind,))
    ):
        raise Invalid(where, f"must be {what}")
    if not isinstance(obj, kind):
        raise Invalid(where, f"must be {what}")
    return obj


def _name(obj: Any, where: str) -> str:
    _expect(obj, str, where, "a string")
    if not NAME_RE.match(obj):
        raise Invalid(where, "must be 1-64 letters, digits or _ . @ -, starting with a letter or digit")
    return str(obj)


def _number(obj: Any, where: str, lo: float, hi: float) -> float:
    _expect(obj, (int, float), where, "a number")
    if not lo <= obj <= hi:
        raise Invalid(where, f"must be between {lo:g} and {hi:g}")
    return float(obj)


def _integer(obj: Any, where: str, lo: int, hi: int) -> int:
    _expect(obj, int, where, "a whole number")
    if not lo <= obj <= hi:
        raise Invalid(where, f"must be between {lo} and {hi}")
    return int(obj)


def _unknown(data: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            prefix = f"{where}." if where else ""
            raise Invalid(
                f"{prefix}{key}",
                f"is not a known field (expected one of {', '.join(sorted(allowed))})",
            )


def parse_skills(obj: Any, where: str) -> dict[str, int]:
    _expect(obj, dict, where, "a table of skill name to level 1-10")
    return {_name(k, f"{where}.{k}"): _integer(v, f"{where}.{k}", 1, 10) for k, v in obj.items()}


def parse_agent(agent_id: str, data: Any, where: str = "") -> Agent:
    _expect(data, dict, where or "body", "an object")
    _unknown(data, {"id", "name", "capacity", "skills", "queues", "extension"}, where)
    p = f"{where}." if where else ""
    if "id" in data and data["id"] != agent_id:
        raise Invalid(f"{p}id", f"must match the agent id in the path ({agent_id!r})")
    name = _expect(data.get("name", agent_id), str, f"{p}name", "a string")
    if len(name) > 200:
        raise Invalid(f"{p}name", "must be at most 200 characters")
    queues = _expect(data.get("queues", []), list, f"{p}queues", "a list of queue names")
    ext = _expect(data.get("extension", ""), str, f"{p}extension", "a string")
    return Agent(
        id=_name(agent_id, f"{p}id"),
        name=name,
        capacity=_integer(data.get("capacity", 100), f"{p}capacity", 1, 100_000),
        skills=parse_skills(data.get("skills", {}), f"{p}skills"),
        queues=tuple(_name(q, f"{p}queues[{i}]") for i, q in enumerate(queues)),
        extension=ext,
    )


def parse_queue(name: str, data: Any, where: str = "") -> Queue:
    _expect(data, dict, where or "body", "an object")
    _unknown(
        data,
        {
            "name",
            "title",
            "strategy",
            "push_timeout",
            "auto_accept",
            "service_level_seconds",
            "service_level_target",
            "priority",
            "wrapup_seconds",
            "overflow_to",
            "overflow_after",
            "overflow_when_unstaffed",
            "relax",
        },
        where,
    )
    p = f"{where}." if where else ""
    if "name" in data and data["name"] != name:
        raise Invalid(f"{p}name", f"must match the queue name in the path ({name!r})")
    strategy = data.get("strategy", "most_available")
    if strategy not in STRATEGIES:
        raise Invalid(f"{p}strategy", f"must be one of {', '.join(STRATEGIES)}")
    return Queue(
        name=_name(name, f"{p}name"),
        title=_expect(data.get("title", ""), str, f"{p}title", "a string"),
        strategy=strategy,
        push_timeout=_number(data.get("push_timeout", 30), f"{p}push_timeout", 0, 86400),
        auto_accept=_expect(data.get("auto_accept", False), bool, f"{p}auto_accept", "true or false"),
        service_level_seconds=_number(
            data.get("service_level_seconds", 20), f"{p}service_level_seconds", 0, 86400
        ),
        service_level_target=_number(data.get("service_level_target", 0.8), f"{p}service_level_target", 0, 1),
        priority=_integer(data.get("priority", 0), f"{p}priority", -1000, 1000),
        wrapup_seconds=_number(data.get("wrapup_seconds", 120), f"{p}wrapup_seconds", 0, 86400),
        overflow_to=_name(data["overflow_to"], f"{p}overflow_to") if data.get("overflow_to") else "",
        overflow_after=_number(data.get("overflow_after", 0), f"{p}overflow_after", 0, 86400),
        overflow_when_unstaffed=_expect(
            data.get("overflow_when_unstaffed", False), bool, f"{p}overflow_when_unstaffed", "true or false"
        ),
        relax=parse_relax(data.get("relax", []), f"{p}relax"),
    )


def parse_center(data: dict[str, Any]) -> Center:
    sections = {"center", "rules", "statuses", "channels", "queues", "agents", "intake", "cases", "webhooks"}
    _unknown(data, sections, "")
    head = _expect(data.get("center", {}), dict, "center", "a table")
    _unknown(head, {"id", "name"}, "center")
    cid = _expect(head.get("id", "default"), str, "center.id", "a string")
    if not CENTER_RE.match(cid):
        raise Invalid("center.id", "must be 1-32 lowercase letters, digits, _ or -")

    statuses: dict[str, Status] = {}
    for i, s in enumerate(_expect(data.get("statuses", []), list, "statuses", "a list")):
        w = f"statuses[{i}]"
        _expect(s, dict, w, "a table")
        _unknown(s, {"name", "routable", "reasons"}, w)
        name = _name(s.get("name"), f"{w}.name")
        reasons = _expect(s.get("reasons", []), list, f"{w}.reasons", "a list of strings")
        statuses[name] = Status(
            name=name,
            routable=_expect(s.get("routable", False), bool, f"{w}.routable", "true or false"),
            reasons=tuple(_expect(r, str, f"{w}.reasons[{j}]", "a string") for j, r in enumerate(reasons)),
        )
    if not statuses:
        statuses = {
            "Available": Status("Available", True),
            "Away": Status("Away", False, ("missed offers",)),
            "Break": Status("Break", False, ("Coffee", "Meeting", "Training")),
            "Lunch": Status("Lunch", False),
            "Offline": Status("Offline", False),
        }

    rules_in = _expect(data.get("rules", {}), dict, "rules", "a table")
    _unknown(
        rules_in,
        {
            "login_status",
            "offline_status",
            "missed_offers_limit",
            "missed_offers_status",
            "missed_offers_reason",
        },
        "rules",
    )
    rules = Rules(
        login_status=_expect(
            rules_in.get("login_status", "Away"), str, "rules.login_status", "a status name"
        ),
        offline_status=_expect(
            rules_in.get("offline_status", "Offline"), str, "rules.offline_status", "a status name"
        ),
        missed_offers_limit=_integer(
            rules_in.get("missed_offers_limit", 3), "rules.missed_offers_limit", 0, 1000
        ),
        missed_offers_status=_expect(
            rules_in.get("missed_offers_status", "Away"),
            str,
            "rules.missed_offers_status",
            "a status name",
        ),
        missed_offers_reason=_expect(
            rules_in.get("missed_offers_reason", "missed offers"),
            str,
            "rules.missed_offers_reason",
            "a string",
        ),
    )
    for key in ("login_status", "offline_status", "missed_offers_status"):
        value = getattr(rules, key)
        if value not in statuses:
            raise Invalid(f"rules.{key}", f"names unknown status {value!r}")
        if statuses[value].routable:
            raise Invalid(f"rules.{key}", f"must name a status that is not routable ({value!r} is)")
    reason = rules.missed_offers_reason
    mstatus = statuses[rules.missed_offers_status]
    if reason and mstatus.reasons and reason not in mstatus.reasons:
        statuses[mstatus.name] = Status(mstatus.name, mstatus.routable, (*mstatus.reasons, reason))

    channels = {n: Channel(n, w, c) for n, (w, c) in DEFAULT_CHANNELS.items()}
    ch_in = _expect(data.get("channels", {}), dict, "channels", "a table")
    for name, c in ch_in.items():
        w = f"channels.{name}"
        _expect(c, dict, w, "a table")
        _unknown(c, {"weight", "cap"}, w)
        base = channels.get(name)
        channels[_name(name, w)] = Channel(
            name=name,
            weight=_integer(c.get("weight", base.weight if base else 10), f"{w}.weight", 1, 100_000),
            cap=_integer(c.get("cap", base.cap if base else 0), f"{w}.cap", 0, 1000),
        )

    queues: dict[str, Queue] = {}
    for i, q in enumerate(_expect(data.get("queues", []), list, "queues", "a list")):
        w = f"queues[{i}]"
        _expect(q, dict, w, "a table")
        queue = parse_queue(_name(q.get("name"), f"{w}.name"), q, w)
        queues[queue.name] = queue

    agents: dict[str, Agent] = {}
    for i, a in enumerate(_expect(data.get("agents", []), list, "agents", "a list")):
        w = f"agents[{i}]"
        _expect(a, dict, w, "a table")
        agent = parse_agent(_name(a.get("id"), f"{w}.id"), a, w)
        for j, qn in enumerate(agent.queues):
            if qn not in queues:
                raise Invalid(f"{w}.queues[{j}]", f"names unknown queue {qn!r}")
        agents[agent.id] = agent

    return Center(
        id=cid,
        name=_expect(head.get("name", cid), str, "center.name", "a string"),
        statuses=statuses,
        channels=channels,
        queues=queues,
        agents=agents,
        rules=rules,
        raw=data,
        intake=parse_intake(data.get("intake", {}), queues),
        cases=parse_cases(data.get("cases", {})),
        webhooks=parse_webhooks(data.get("webhooks", [])),
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
        raise Invalid(f"{where}: {exc.field}", exc.message) from None


# -- intake, cases and webhooks (presence/http/channels/, presence/services/)


def parse_relax(obj: Any, where: str) -> tuple[Relax, ...]:
    _expect(obj, list, where, "a list of {after, lower, drop} steps")
    steps: list[Relax] = []
    for i, r in enumerate(obj):
        w = f"{where}[{i}]"
        _expect(r, dict, w, "a table {after, lower, drop}")
        _unknown(r, {"after", "lower", "drop"}, w)
        if "after" not in r:
            raise Invalid(f"{w}.after", "is required (seconds waited before this step)")
        after = _number(r["after"], f"{w}.after", 0, 86400)
        if steps and after < steps[-1].after:
            raise Invalid(f"{w}.after", "must not be earlier than the step before it")
        drop = _expect(r.get("drop", []), list, f"{w}.drop", "a list of skill names")
        steps.append(
            Relax(
                after=after,
                lower=_integer(r.get("lower", 0), f"{w}.lower", 0, 9),
                drop=tuple(_name(d, f"{w}.drop[{j}]") for j, d in enumerate(drop)),
            )
        )
    return tuple(steps)


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

    @property
    def initial(self) -> str:
        return self.statuses[0]


WEBHOOK_EVENTS = (
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
)


@dataclass(frozen=True, slots=True)
class Webhook:
    """One outbound webhook (`[[webhooks]]`); the secret never reaches Redis."""

    name: str
    url: str
    secret: str
    events: tuple[str, ...] = ("*",)
    timeout: float = 5.0
    max_backoff: float = 60.0
    # deliveries pending on a silent process are taken over after this long
    # (0: max(30, 3 x timeout)); longer than any attempt can take
    claim_after: float = 0.0


def _queue_map(obj: Any, where: str, queues: dict[str, Queue]) -> dict[str, str]:
    _expect(obj, dict, where, "a table of key to queue name")
    out: dict[str, str] = {}
    for k, v in obj.items():
        out[str(k)] = _known_queue(v, f"{where}.{k}", queues)
    return out


def _known_queue(v: Any, where: str, queues: dict[str, Queue]) -> str:
    name = _name(v, where)
    if queues and name not in queues:
        raise Invalid(where, f"names unknown queue {name!r}")
    return name


def parse_intake(obj: Any, queues: dict[str, Queue]) -> Intake:
    _expect(obj, dict, "intake", "a table")
    _unknown(obj, {"voice", "email", "forms", "messaging"}, "intake")
    first = next(iter(queues), "support")
    voice = _expect(obj.get("voice", {}), dict, "intake.voice", "a table")
    _unknown(voice, {"queue", "ivr", "numbers"}, "intake.voice")
    email = _expect(obj.get("email", {}), dict, "intake.email", "a table")
    _unknown(email, {"queue", "addresses"}, "intake.email")
    forms = _expect(obj.get("forms", {}), dict, "intake.forms", "a table")
    _unknown(forms, {"queue", "categories", "rate_limit", "rate_window", "honeypot"}, "intake.forms")
    msg = _expect(obj.get("messaging", {}), dict, "intake.messaging", "a table")
    _unknown(msg, {"queues"}, "intake.messaging")

    def default(table: dict[str, Any], where: str) -> str:
        return _known_queue(table["queue"], where, queues) if "queue" in table else first

    messaging = _queue_map(msg.get("queues", {}), "intake.messaging.queues", queues)
    for ch in ("chat", "sms", "social"):
        messaging.setdefault(ch, first)
    return Intake(
        voice_queue=default(voice, "intake.voice.queue"),
        ivr=_queue_map(voice.get("ivr", {}), "intake.voice.ivr", queues),
        numbers=_queue_map(voice.get("numbers", {}), "intake.voice.numbers", queues),
        email_queue=default(email, "intake.email.queue"),
        addresses={
            k.lower(): v
            for k, v in _queue_map(email.get("addresses", {}), "intake.email.addresses", queues).items()
        },
        form_queue=default(forms, "intake.forms.queue"),
        categories=_queue_map(forms.get("categories", {}), "intake.forms.categories", queues),
        form_rate_limit=_integer(forms.get("rate_limit", 5), "intake.forms.rate_limit", 0, 100_000),
        form_rate_window=_integer(forms.get("rate_window", 60), "intake.forms.rate_window", 1, 86400),
        form_honeypot=_expect(forms.get("honeypot", "website"), str, "intake.forms.honeypot", "a field name"),
        messaging=messaging,
    )


def parse_cases(obj: Any) -> CaseConfig:
    _expect(obj, dict, "cases", "a table")
    _unknown(obj, {"statuses", "working", "closed", "reopen", "thread_days"}, "cases")
    base = CaseConfig()
    raw = _expect(obj.get("statuses", list(base.statuses)), list, "cases.statuses", "a list of names")
    statuses = tuple(_expect(s, str, f"cases.statuses[{i}]", "a status name") for i, s in enumerate(raw))
    if len(statuses) < 2 or any(not s or len(s) > 64 for s in statuses):
        raise Invalid("cases.statuses", "must list at least two statuses of 1-64 characters")
    if len(set(statuses)) != len(statuses):
        raise Invalid("cases.statuses", "must not list a status twice")
    out: dict[str, str] = {}
    for role, dflt in (("working", base.working), ("closed", statuses[-1]), ("reopen", statuses[0])):
        if role == "working" and "working" not in obj and dflt not in statuses:
            dflt = statuses[1]
        value = _expect(obj.get(role, dflt), str, f"cases.{role}", "a status name")
        if value and value not in statuses:
            raise Invalid(f"cases.{role}", f"names {value!r}, which is not in cases.statuses")
        out[role] = value
    return CaseConfig(
        statuses=statuses,
        working=out["working"],
        closed=out["closed"] or statuses[-1],
        reopen=out["reopen"] or statuses[0],
        thread_days=_integer(obj.get("thread_days", 180), "cases.thread_days", 1, 3650),
    )


def parse_webhooks(obj: Any) -> tuple[Webhook, ...]:
    _expect(obj, list, "webhooks", "a list of tables")
    hooks: list[Webhook] = []
    for i, h in enumerate(obj):
        w = f"webhooks[{i}]"
        _expect(h, dict, w, "a table")
        allowed = {"name", "url", "secret", "secret_env", "events", "timeout", "max_backoff", "claim_after"}
        _unknown(h, allowed, w)
        name = _name(h.get("name"), f"{w}.name")
        if any(x.name == name for x in hooks):
            raise Invalid(f"{w}.name", f"webhook {name!r} is defined twice")
        url = _expect(h.get("url"), str, f"{w}.url", "an http(s) URL")
        if not url.startswith(("http://", "https://")):
            raise Invalid(f"{w}.url", "must be an http:// or https:// URL")
        secret = h.get("secret")
        if "secret_env" in h:
            env = _expect(h["secret_env"], str, f"{w}.secret_env", "an environment variable name")
            secret = os.environ.get(env)
            if not secret:
                raise Invalid(f"{w}.secret_env", f"names {env}, which is not set")
        secret = _expect(secret, str, f"{w}.secret", "a string of at least 16 characters (or secret_env)")
        if len(secret) < 16:
            raise Invalid(f"{w}.secret", "must be at least 16 characters")
        events = _expect(h.get("events", ["*"]), list, f"{w}.events", "a list of event types")
        for j, e in enumerate(events):
            if e != "*" and e not in WEBHOOK_EVENTS:
                raise Invalid(f"{w}.events[{j}]", f"must be * or one of {', '.join(WEBHOOK_EVENTS)}")
        hooks.append(
            Webhook(
                name=name,
                url=url,
                secret=secret,
                events=tuple(events),
                timeout=_number(h.get("timeout", 5), f"{w}.timeout", 0.1, 120),
                max_backoff=_number(h.get("max_backoff", 60), f"{w}.max_backoff", 0.1, 3600),
                claim_after=_number(h.get("claim_after", 0), f"{w}.claim_after", 0, 86400),
            )
        )
    return tuple(hooks)
