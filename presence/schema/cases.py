"""The case routes' shapes: a note, a case status, a transfer, the
supervisor's moves (reassign, push), a customer of the directory, and
their answers."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta, Struct

from presence.schema.common import (
    CENTER_CHARS,
    NOTE_MAX,
    SPACE,
    WS,
    AgentId,
    CustomerId,
    Note,
    NoteText,
    OptionalAgentId,
    OptionalQueueName,
    ReplyText,
    Shape,
    ShortText,
    WorkId,
    free_form,
)

ATTRIBUTES_MAX: Final = 8000


class CommentInput(Shape, kw_only=True):
    """A note on an item's timeline (``POST /api/v1/work/{work_id}/comments``)."""

    text: NoteText


class CaseStatusInput(Shape, kw_only=True):
    """``POST /api/v1/work/{work_id}/status``."""

    status: Annotated[
        str,
        Meta(min_length=1, max_length=64, description="one of the center's case statuses ([cases] statuses)"),
    ]


class ReplyInput(Shape, kw_only=True):
    """The holder's reply to the customer (``POST /api/v1/work/{work_id}/replies``)."""

    text: ReplyText
    # a second reply to the customer's same message is refused (409 conflict,
    # field confirm) unless this is true
    confirm: Annotated[bool, Meta(description="send even if the customer's latest message was answered")] = (
        False
    )


# a customer link's token (presence.auth.sign_link): the center (every one
# but the default), work id, expiry, signature
LinkToken = Annotated[
    str,
    Meta(
        max_length=400,
        pattern=rf"^(?:{CENTER_CHARS}\.)?[A-Za-z0-9_-]+\.[0-9]{{1,12}}\.[A-Za-z0-9_-]+$",
        description="a link token",
    ),
]


class CustomerMessageInput(Shape, kw_only=True, forbid_unknown_fields=False):
    """A message the customer adds on their case's status page
    (``POST /status/{token}`` as a form, ``POST /api/v1/status/{token}/messages`` as JSON)."""

    text: NoteText
    lang: Annotated[str, Meta(max_length=8, description="the page's language: en or ja")] = ""


CsatScore = Annotated[
    int, Meta(ge=1, le=5, description="the customer's satisfaction, 1 (poor) to 5 (excellent)")
]
CsatComment = Annotated[
    str, Meta(max_length=NOTE_MAX, description=f"a comment of at most {NOTE_MAX} characters")
]


class SurveyInput(Shape, kw_only=True):
    """The customer's satisfaction answer (``POST /survey/{token}/answer``), once per case."""

    score: CsatScore
    comment: CsatComment = ""


class SurveyForm(Shape, kw_only=True, forbid_unknown_fields=False):
    """The survey page's form (``POST /survey/{token}``): the score as the form sends it."""

    score: Annotated[
        Literal["1", "2", "3", "4", "5"],
        Meta(description="the customer's satisfaction, 1 (poor) to 5 (excellent)"),
    ]
    comment: CsatComment = ""
    lang: Annotated[str, Meta(max_length=8, description="the page's language: en or ja")] = ""


HandoffNote = Annotated[Note, Meta(description="a handoff note for the next agent")]


class TransferInput(Shape, kw_only=True):
    """``POST /api/v1/work/{work_id}/transfer``: to an agent or to a queue."""

    GIVEN = ((("to_agent", "to_queue"), True),)

    to_agent: OptionalAgentId | None = ""
    to_queue: OptionalQueueName | None = ""
    note: HandoffNote | None = ""


class ReassignInput(Shape, kw_only=True):
    """``POST /api/v1/work/{work_id}/reassign``: the item moves to this agent."""

    agent_id: AgentId
    note: HandoffNote | None = ""


class PushInput(Shape, kw_only=True):
    """``POST /api/v1/work/{work_id}/push``: the item is offered to this agent."""

    agent_id: AgentId


# -- the customer directory ---------------------------------------------------------------

# A phone number as the directory keys it (presence.store.cases.normalise_phone):
# its digits, and a leading +, 3 to 32 characters in all.
CustomerPhone = Annotated[
    str,
    Meta(
        pattern=rf"^{WS}*(?:\+(?:\D*\d){{2,31}}|(?:[^\d{SPACE}+]\D*)?\d(?:\D*\d){{2,31}})\D*$",
        description="a phone number: 3-32 digits (and a leading +), in any layout",
    ),
]
CustomerEmail = Annotated[
    str,
    Meta(max_length=254, pattern=rf"^{WS}*[^@{SPACE}]+@[^@{SPACE}]+{WS}*$", description="an email address"),
]


class CustomerInput(Shape, kw_only=True):
    """A customer of the directory (``PUT /api/v1/customers/{customer_id}``)."""

    name: ShortText | msgspec.UnsetType | None = msgspec.UNSET
    company: ShortText | msgspec.UnsetType | None = msgspec.UNSET
    tier: ShortText | msgspec.UnsetType | None = msgspec.UNSET
    language: ShortText | msgspec.UnsetType | None = msgspec.UNSET
    notes: Note | msgspec.UnsetType | None = msgspec.UNSET
    phones: Annotated[list[CustomerPhone], Meta(max_length=20)] = msgspec.field(default_factory=list)
    emails: Annotated[list[CustomerEmail], Meta(max_length=20)] = msgspec.field(default_factory=list)
    attributes: Annotated[
        dict[str, Any], Meta(description=f"free fields, at most {ATTRIBUTES_MAX} bytes of JSON")
    ] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.attributes, _ = free_form(self.attributes, "attributes", ATTRIBUTES_MAX)


# -- answers --------------------------------------------------------------------------------


class NoteAnswer(Struct, kw_only=True):
    """A note as the timeline keeps it."""

    author: str
    text: str
    ts: int


class ReplyAnswer(Struct, kw_only=True):
    """A reply as the case keeps it: which inbound message it answers (1 =
    the first; 0: none yet) and whether it was a confirmed second reply."""

    author: str
    text: str
    ts: int
    message: int
    again: bool


class Replies(Struct, kw_only=True):
    work_id: WorkId
    replies: list[ReplyAnswer]


class Comments(Struct, kw_only=True):
    work_id: WorkId
    comments: list[NoteAnswer]


class Case(Struct, kw_only=True):
    """A case's fields (status, source, category, customer, lead, times)."""

    work_id: WorkId
    lead: bool
    status: str | msgspec.UnsetType = msgspec.UNSET


class Customer(Struct, kw_only=True):
    """A customer of the directory."""

    id: CustomerId
    phones: list[str]
    emails: list[str]
    attributes: dict[str, Any]


PageLimit = Annotated[int, Meta(ge=1, le=100, description="how many to return, 1-100")]
Cursor = Annotated[
    int, Meta(ge=0, le=2**53, description="the `next` of the previous page (a creation time, ms)")
]


class PastCase(Struct, kw_only=True):
    """One of a customer's cases, as their history lists it."""

    work_id: WorkId
    created: int | None = None
    channel: str | None = None
    subject: str | None = None
    status: str | None = None
    owner: str | None = None  # the agent who handled it last ("" for none yet)
    owner_name: str | None = None
    queue: str | None = None
    closed: int | None = None
    updated: int | None = None


class CustomerCases(Struct, kw_only=True):
    """A page of a customer's cases, newest first; ``next`` is the cursor of the following page."""

    customer_id: CustomerId
    cases: list[PastCase]
    next: int | None


class CustomerStatus(Struct, kw_only=True):
    """What the customer sees of their case on its status link."""

    work_id: WorkId
    status: str | None
    subject: str
    created: int | None
    updated: int | None
    closed: int | None
    messages: list[dict[str, Any]]
    replies: list[dict[str, Any]]
    state: str | None = None  # the item's: queued, assigned, completed ...
    ended_at: int | None = None
    csat: int | None = None  # the customer's survey score, once answered
    survey_path: str | msgspec.UnsetType = msgspec.UNSET  # the survey link, while it may be answered


class Webhooks(Struct, kw_only=True):
    """Each configured webhook and its delivery state."""

    webhooks: list[dict[str, Any]]
