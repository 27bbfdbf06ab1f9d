"""Every Redis key and channel name of presence, in one place.

All keys of a center share the prefix ``presence:{<center>}:``. The braces are
a Redis Cluster hash tag: every key one Lua script touches lies in the same
slot, so a cluster can host many centers while each script stays atomic.
The Lua scripts receive the prefix as KEYS[1] and build the same names (``key`` in
``store/lua/_lib_core.lua``); the two lists must stay in step, and
``tests/unit/test_keys.py`` checks the Lua side spells them the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def scan_match(prefix: str) -> str:
    """The SCAN MATCH pattern of every key that starts with `prefix`, its
    glob characters (`*`, `?`, `[`, `]`, `\\`) taken literally."""
    return re.sub(r"([\\*?\[\]])", r"\\\1", prefix) + "*"


@dataclass(frozen=True, slots=True)
class Keys:
    center: str

    @property
    def prefix(self) -> str:
        return f"presence:{{{self.center}}}:"

    @property
    def anchor(self) -> str:  # STRING "1": the key every script declares (KEYS[1]) exists
        # The scripts name the prefix as their one declared key. On a cluster
        # a slot being moved sends a call whose declared key is missing on the
        # old node to the new one (ASK): kept existing, the call runs where the
        # center's keys are until they all moved (docs/scaling.md).
        return self.prefix

    @property
    def slot_probe(self) -> str:  # never written: read first by every call on a cluster (_lib_core.lua enter)
        return self._k("slot-probe")

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # -- center configuration
    @property
    def statuses(self) -> str:  # HASH status name -> msgpack {routable, reasons}
        return self._k("statuses")

    @property
    def channels(self) -> str:  # HASH channel name -> msgpack {weight, cap}
        return self._k("channels")

    @property
    def rules(self) -> str:  # HASH rule name -> value (a writer deletes settings_version)
        return self._k("rules")

    @property
    def settings_version(self) -> str:  # STRING: deleted by every writer of channels, webhooks, rules, queues
        # The scripts keep the channels, the webhooks, the rules and the
        # queues' settings (their hours too) between calls (_lib_config.lua) while this holds the token
        # they read them under; a writer deletes it, and the next reader
        # reads the settings afresh and sets a new token.
        return self._k("settings", "version")

    @property
    def agents(self) -> str:  # SET of agent ids
        return self._k("agents")

    @property
    def agents_removed(self) -> str:  # SET of agent ids deleted by the API (never re-seeded)
        return self._k("agents", "removed")

    @property
    def queues(self) -> str:  # ZSET queue name -> queue priority
        return self._k("queues")

    @property
    def queues_removed(self) -> str:  # SET of queue names deleted by the API (never re-seeded)
        return self._k("queues", "removed")

    @property
    def composing(self) -> str:  # ZSET work id -> end (ms) of its "being answered by" mark
        return self._k("composing")

    def ref(self, retry_key: str, script: str = "") -> str:  # STRING msgpack [args digest, reply], short TTL
        # a remembered script call's reply (store/scripts.py REMEMBERED); a
        # retry key made by the server (``~...``, one call's) names no script
        return self._k("ref", retry_key, script) if script else self._k("ref", retry_key)

    def agent(self, agent_id: str) -> str:  # HASH profile + live state
        return self._k("agent", agent_id)

    def agent_offers(self, agent_id: str) -> str:  # SET work ids offered to the agent
        return self._k("agent", agent_id, "offers")

    def agent_work(self, agent_id: str) -> str:  # SET work ids held (assigned, wrapup) by an agent
        # written before they moved to its field `w` (`in_hand`, _lib_agent.lua): read, never added to
        return self._k("agent", agent_id, "work")

    def queue(self, name: str) -> str:  # HASH queue settings
        return self._k("queue", name)

    def queue_waiting(self, name: str) -> str:  # ZSET work id -> priority/age score
        return self._k("queue", name, "waiting")

    def queue_ready(self, name: str) -> str:  # ZSET routable agents with room -> strategy score
        return self._k("queue", name, "ready")

    def queue_members(self, name: str) -> str:  # SET agent ids
        return self._k("queue", name, "members")

    # -- work items
    def work(self, work_id: str) -> str:  # HASH item
        return self._k("work", work_id)

    def work_declined(self, work_id: str) -> str:  # SET agents who declined the item
        return self._k("work", work_id, "declined")

    def work_history(self, work_id: str) -> str:  # LIST msgpack history entries
        return self._k("work", work_id, "history")

    @property
    def work_open(self) -> str:  # ZSET work id -> created ms, every non-final item
        return self._k("work", "open")

    def idempotency(self, key: str) -> str:  # STRING work id, expires after a day
        return self._k("idem", key)

    # -- timers (ZSET member -> deadline ms), swept by store/lua/sweep.lua
    @property
    def offer_deadlines(self) -> str:
        return self._k("timer", "offers")

    @property
    def wrapup_deadlines(self) -> str:
        return self._k("timer", "wrapups")

    @property
    def leases(self) -> str:  # member "agent_id|conn_id"
        return self._k("timer", "leases")

    @property
    def graces(self) -> str:  # member agent_id
        return self._k("timer", "graces")

    # -- history and fan-out
    @property
    def status_stream(self) -> str:  # STREAM of status changes
        return self._k("stream", "status")

    @property
    def event_stream(self) -> str:  # STREAM of every routing event
        return self._k("stream", "events")

    @property
    def events_channel(self) -> str:  # PUB/SUB channel every process listens on
        return self._k("events")

    @property
    def stats(self) -> str:  # HASH created/completed/abandoned counters before `metrics`' stats|* (checker)
        # No script writes it now; check.lua adds it to `metrics`' stats|*
        # fields, which a center counts in from then on.
        return self._k("stats")

    @property
    def demo_lock(self) -> str:  # STRING holder id: the one process running the demo (presence.demo)
        return self._k("demo", "lock")

    # -- cases, channels, customers (presence/store/cases.py, presence/http/channels/)
    def case(self, work_id: str) -> str:  # HASH case fields of a work item (id = work id)
        return self._k("case", work_id)

    def case_comments(self, work_id: str) -> str:  # LIST msgpack {author, text, ts}
        return self._k("case", work_id, "comments")

    def case_messages(self, work_id: str) -> str:  # LIST msgpack customer messages of the case
        return self._k("case", work_id, "messages")

    def case_replies(self, work_id: str) -> str:  # LIST msgpack {author, text, ts, message, channel, again}
        return self._k("case", work_id, "replies")

    @property
    def case_config(self) -> str:  # HASH statuses (msgpack list), closed, reopen
        return self._k("cases", "config")

    def thread(self, ref: str) -> str:  # STRING work id of a conversation/message/call reference
        return self._k("thread", ref)

    @property
    def templates(self) -> str:  # HASH template id -> msgpack {name, text, kind, channels, queues, ...}
        return self._k("templates")

    def customer_cases(self, customer_id: str) -> str:  # ZSET work id -> created ms, the customer's cases
        return self._k("customer", customer_id, "cases")

    @property
    def customers(self) -> str:  # HASH customer id -> msgpack profile
        return self._k("customers")

    @property
    def customer_phones(self) -> str:  # HASH normalised phone -> customer id
        return self._k("customers", "phone")

    @property
    def customer_emails(self) -> str:  # HASH lowercased email -> customer id
        return self._k("customers", "email")

    def rate(self, bucket: str) -> str:  # STRING counter with a TTL (form rate limit)
        return self._k("rate", bucket)

    # -- overflow, relaxation, expected wait (store/lua/queue_escalate.lua)
    def queue_borrowed(self, name: str) -> str:  # ZSET items of other queues this queue may also take
        return self._k("queue", name, "borrowed")

    def queue_handle(self, name: str) -> str:  # LIST recent handle times (ms), newest first (50 read)
        return self._k("queue", name, "handle")

    @property
    def escalations(self) -> str:  # ZSET work id -> next overflow/relaxation check (ms)
        return self._k("timer", "escalations")

    # -- outbound webhooks (presence/store/webhooks.py, presence/services/webhooks.py)
    @property
    def webhooks(self) -> str:  # HASH webhook name -> msgpack list of event types
        return self._k("webhooks")

    def webhook_stream(self, name: str) -> str:  # STREAM pending deliveries of one webhook
        return self._k("webhook", name)

    # -- KPI history and metrics (presence/kpi/)
    def kpi_hour(self, hour: str) -> str:  # STRING msgpack roll-up of one UTC hour "YYYYMMDDHH"
        return self._k("kpi", "hour", hour)

    def kpi_day(self, day: str) -> str:  # STRING msgpack roll-up of one day "YYYYMMDD" (center time zone)
        return self._k("kpi", "day", day)

    @property
    # HASH rolled (ms, the roll-up's cursor), open_at + open (msgpack ids of the
    # items followed there), trimmed (ms)
    def kpi_state(self) -> str:
        return self._k("kpi", "state")

    def kpi_lock(self, name: str) -> str:  # STRING holder id with a TTL: one process does `name`
        return self._k("kpi", "lock", name)

    @property
    def kpi_audience(self) -> str:  # STRING "1" with a TTL: some process has a supervisor (live KPIs)
        return self._k("kpi", "audience")

    @property
    def archive_state(
        self,
    ) -> str:  # HASH day: the last day the scheduled archive wrote (services/archive.py)
        return self._k("archive", "state")

    @property
    def metrics(self) -> str:  # HASH Prometheus counters and histogram buckets; `cursor` stream id
        # and the items' lives the checker adds up (stats|*, count_item in _lib_core.lua)
        return self._k("metrics")

    @property
    def metrics_conns(self) -> str:  # HASH process id -> msgpack {agent, supervisor, ts}
        return self._k("metrics", "conns")


# -- the deployment's centers (presence/store/centers.py) ----------------------------
# Both keys share the hash tag {centers}: one slot, so one MULTI writes both.
CENTER_DOCS = "presence:{centers}:docs"  # HASH center id -> JSON center document (as PUT)
CENTER_REVISIONS = "presence:{centers}:rev"  # HASH center id -> revision, bumped by every apply
CENTER_PROCESSES = "presence:{centers}:procs"  # HASH server process id -> last heartbeat ms (owners)


# The one-letter field names the scripts write for an event's attributes,
# both in a ``stream:events`` entry and in an item record's history entry
# (`xadd` and `history_entry` in store/lua/_lib_core.lua), and the names they
# are read with. Each adds its own: the stream's `w` (work), the record's
# `e` (ev).
SHORT_FIELDS = {
    "a": "agent",
    "q": "queue",
    "c": "channel",
    "p": "priority",
    "d": "disposition",
    "v": "via",
    "b": "by",
}
