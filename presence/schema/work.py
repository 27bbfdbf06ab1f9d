"""Work intake: the body of ``POST /api/v1/work``, its batch form, cancel,
and their answers.

`WorkInput` is the whole item a CRM or a CTI posts: where it goes (queue,
channel), how urgent it is, the skills it needs (none by default), and what
the agent sees (subject, customer, payload, carried as is). The demo builds
the same Struct, so every item passes the same rules.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta, Struct

from presence.schema import Invalid, convert
from presence.schema.common import (
    ChannelName,
    FieldError,
    IdempotencyKey,
    Priority,
    QueueName,
    Shape,
    Skills,
    Subject,
    WorkId,
    free_form,
)

MAX_PAYLOAD: Final = 64 * 1024
BATCH_MAX: Final = 500


class CustomerRef(Struct, kw_only=True):
    """The customer fields an agent's panel reads; any others are kept as
    they are."""

    id: str | int | None = None
    name: str | int | None = None
    phone: str | int | None = None
    email: str | int | None = None


def _properties(tp: type[Struct]) -> dict[str, Any]:
    schema = msgspec.json.schema(tp)
    props: dict[str, Any] = schema["$defs"][tp.__name__]["properties"]
    return props


Customer = Annotated[
    dict[str, Any],
    Meta(
        description="who the item is about: id, name, phone, email and any free fields "
        f"(with payload at most {MAX_PAYLOAD} bytes of JSON)",
        extra_json_schema={"properties": _properties(CustomerRef)},
    ),
]
Payload = Annotated[dict[str, Any], Meta(description="carried to the agent as is")]


class WorkInput(Shape, kw_only=True):
    """A new work item (``POST /api/v1/work``)."""

    channel: ChannelName
    queue: QueueName
    priority: Priority = 0
    # no requirements unless the item names some
    skills: Skills = msgspec.field(default_factory=dict)
    subject: Subject = ""
    customer: Customer = msgspec.field(default_factory=dict)
    payload: Payload = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            convert(self.customer, CustomerRef)
        except Invalid as exc:
            raise FieldError(f"customer.{exc.field}", exc.message) from None
        self.customer, used = free_form(self.customer, "customer", MAX_PAYLOAD)
        self.payload, _ = free_form(self.payload, "payload", MAX_PAYLOAD - used)

    def digest(self) -> str:
        """What "the same body" means for an Idempotency-Key: the item as
        decoded (defaults filled in, keys in order), so spacing, key order
        and an explicit default do not make two posts differ."""
        body = {name: getattr(self, name) for name in WorkInput.__struct_fields__}
        return hashlib.sha256(msgspec.json.encode(body, order="sorted")).hexdigest()[:32]


class WorkBatchItem(WorkInput, kw_only=True):
    """One element of ``POST /api/v1/work:batch``: a `WorkInput` and its own
    idempotency key."""

    idempotency_key: IdempotencyKey = ""


class WorkBatch(Shape, kw_only=True):
    """``POST /api/v1/work:batch``: each item is validated on its own (its
    refusal is its result, not the request's)."""

    items: Annotated[
        list[msgspec.Raw],
        Meta(
            min_length=1,
            description=f"1 to {BATCH_MAX} bodies of POST /api/v1/work, each with an optional "
            "idempotency_key; each is validated on its own",
            extra_json_schema={"maxItems": BATCH_MAX, "items": {}},
        ),
    ]

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.items) > BATCH_MAX:
            raise FieldError("items", f"must hold at most {BATCH_MAX} work items", status=413)


class CancelInput(Shape, kw_only=True):
    """The optional body of ``POST /api/v1/work/{work_id}/cancel``."""

    reason: Annotated[str, Meta(max_length=200, description="why, at most 200 characters")] = "cancelled"


# -- answers ---------------------------------------------------------------------------


class WorkCreated(Struct, kw_only=True):
    """A new item (201), or the item an Idempotency-Key already made (200)."""

    id: WorkId
    state: str
    queue: str
    channel: str
    created_at: float | None = None


class BatchResult(Struct, kw_only=True):
    """One item's result: 201 (created), 200 (an idempotent repeat) or 4xx
    with a problem naming ``items[i].<field>``."""

    status: int
    id: str | msgspec.UnsetType = msgspec.UNSET
    state: str | msgspec.UnsetType = msgspec.UNSET
    queue: str | msgspec.UnsetType = msgspec.UNSET
    channel: str | msgspec.UnsetType = msgspec.UNSET
    problem: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class BatchResults(Struct, kw_only=True):
    items: list[BatchResult]


class Work(Struct, kw_only=True):
    """A work item: its record, history and, for a case, the case (fields,
    comments, messages); while queued, its position and expected wait."""

    id: WorkId
    work_id: WorkId
    state: str
    queue: str
    channel: str
    priority: int | msgspec.UnsetType = msgspec.UNSET
    agent_id: str | msgspec.UnsetType | None = msgspec.UNSET
    history: list[dict[str, Any]] | msgspec.UnsetType = msgspec.UNSET
    # a case's: the customer's signed status link (/status/...)
    status_path: str | msgspec.UnsetType = msgspec.UNSET


class WorkState(Struct, kw_only=True):
    """An item's state after a change."""

    id: WorkId
    state: str
