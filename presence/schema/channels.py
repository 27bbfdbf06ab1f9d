"""The channel adapters' shapes: a call and its hang-up, an inbound email,
a chat/SMS/social message, the public web form, and their answers.

A text field an integration may leave out may also be sent as ``""`` or
``null``: both mean "not given", as before this schema. Where a value is
parsed further (an address list, a list of message ids), the pattern that
checks it is the grammar the adapter parses with (`mailboxes`,
`message_ids`), so no value the schema accepts is refused later.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta, Struct

from presence.schema.common import (
    _END,
    NOT_BLANK,
    REF_MAX,
    SPACE,
    TEXT_MAX,
    WS,
    Priority,
    Shape,
    ShortText,
    Skills,
    Subject,
    Text,
    WorkId,
    free_form,
)

# -- voice ------------------------------------------------------------------------------

CALL_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}" + _END
_NUMBER: Final = r"\+?[0-9A-Za-z_.:@*#()\- ]{1,64}"

CallId = Annotated[
    str,
    Meta(
        pattern=CALL_ID_PATTERN,
        description="the telephony system's call id: 1-128 letters, digits or _ . : @ + -",
    ),
]
PhoneNumber = Annotated[
    str, Meta(pattern=f"^{_NUMBER}{_END}", description="a phone number or SIP user of at most 64 characters")
]
OptionalPhoneNumber = Annotated[
    str,
    Meta(pattern=f"^(?:{_NUMBER})?{_END}", description="a phone number or SIP user of at most 64 characters"),
]
Digits = Annotated[
    str, Meta(pattern=r"^[0-9*#]{0,32}" + _END, description="the keys pressed: up to 32 of 0-9, * and #")
]


class _Intake(Shape, kw_only=True):
    """What every intake may say about the new item."""

    priority: Priority = 0
    skills: Skills = msgspec.field(default_factory=dict)


class CallInput(_Intake, kw_only=True):
    """A call arrived (``POST /api/v1/channels/voice/calls``)."""

    call_id: CallId
    from_: Annotated[PhoneNumber, Meta(description="the caller's number")] = msgspec.field(name="from")
    to: Annotated[OptionalPhoneNumber, Meta(description="the dialled number")] | None = ""
    digits: Digits | None = ""
    caller_name: ShortText | None = ""
    subject: Subject | None = ""


class HangupInput(Shape, kw_only=True):
    """The optional body of ``POST /api/v1/channels/voice/calls/{call_id}/hangup``."""

    reason: ShortText | None = ""


# -- email ------------------------------------------------------------------------------

_ADDR: Final = rf'[^{SPACE}@<>",;]+@[^{SPACE}@<>",;]+'
# a mailbox: an address, or a display name (plain or quoted) and <address>
_MAILBOX: Final = rf'{WS}*(?:((?:"[^"]*"|[^<>@",;])*?){WS}*<({_ADDR})>|({_ADDR})){WS}*'
MAILBOX_PATTERN: Final = f"^{_MAILBOX}{_END}"
MAILBOXES_PATTERN: Final = f"^{_MAILBOX}(?:,{_MAILBOX})*{_END}"
_MAILBOX_RE: Final = re.compile(_MAILBOX)

Mailbox = Annotated[
    str,
    Meta(
        max_length=500,
        pattern=MAILBOX_PATTERN,
        description='an email address, optionally with a name: "Ken Sato <ken@example.org>"',
    ),
]
Mailboxes = Annotated[
    str, Meta(pattern=MAILBOXES_PATTERN, description="one email address or several, separated by commas")
]
OptionalMailboxes = Annotated[
    str,
    Meta(pattern=f"^(?:{_MAILBOX}(?:,{_MAILBOX})*)?{_END}", description="email addresses, or empty"),
]

_ID: Final = rf"<?[^{SPACE}<>]{{1,{REF_MAX}}}>?"
MessageId = Annotated[
    str,
    Meta(
        pattern=rf"^{WS}*{_ID}{WS}*{_END}",
        description=f"a message id like <abc@example.com> (at most {REF_MAX} characters)",
    ),
]
OptionalMessageId = Annotated[
    str,
    Meta(
        pattern=rf"^(?:{WS}*{_ID}{WS}*)?{_END}", description="a message id like <abc@example.com>, or empty"
    ),
]
MessageIds = Annotated[
    str,
    Meta(
        pattern=rf"^{WS}*(?:{_ID}{WS}+)*(?:{_ID})?{WS}*{_END}", description="message ids separated by spaces"
    ),
]


def mailboxes(value: str) -> list[tuple[str, str]]:
    """(display name, lowercased address) of each mailbox of a checked value."""
    out = []
    for m in _MAILBOX_RE.finditer(value):
        name, addr = (m[1] or "").strip(), m[2] or m[3]
        if addr:
            out.append((name[1:-1] if len(name) > 1 and name[0] == name[-1] == '"' else name, addr.lower()))
    return out


def message_ids(value: str) -> list[str]:
    """The ids of a checked value, without their angle brackets."""
    return [part.strip("<>") for part in value.split()]


class EmailInput(_Intake, kw_only=True):
    """An inbound email, parsed by the mail gateway (``POST /api/v1/channels/email/inbound``)."""

    GIVEN = ((("text", "html"), False),)

    message_id: MessageId
    from_: Mailbox = msgspec.field(name="from")
    to: Mailboxes | Annotated[list[Mailboxes], Meta(min_length=1)]
    cc: OptionalMailboxes | list[Mailboxes] | None = ""
    subject: Subject | None = ""
    text: Annotated[Text, Meta(description="the plain-text body (or give html)")] | None = ""
    html: Annotated[Text, Meta(description="the HTML body (or give text)")] | None = ""
    in_reply_to: OptionalMessageId | None = ""
    references: MessageIds | list[MessageId] | None = ""


# -- messaging ---------------------------------------------------------------------------

PlatformId = Annotated[
    str,
    Meta(
        pattern=rf"^{NOT_BLANK}{{1,{REF_MAX}}}{_END}",
        description=f"an id from the messaging platform: 1-{REF_MAX} characters, no spaces",
    ),
]
OptionalPlatformId = Annotated[
    str,
    Meta(
        pattern=rf"^{NOT_BLANK}{{0,{REF_MAX}}}{_END}",
        description=f"an id from the messaging platform (at most {REF_MAX} characters, no spaces), or empty",
    ),
]


class Sender(Shape, kw_only=True):
    """Who wrote a message, as the platform knows them."""

    id: ShortText | None = ""
    name: ShortText | None = ""
    phone: ShortText | None = ""
    email: ShortText | None = ""
    handle: ShortText | None = ""


class MessageInput(_Intake, kw_only=True):
    """A chat, SMS or social message (``POST /api/v1/channels/{channel}/messages``)."""

    conversation_id: PlatformId
    message_id: OptionalPlatformId | None = ""
    from_: Annotated[Sender | ShortText, Meta(description="the sender, or the sender's id")] = msgspec.field(
        default_factory=Sender, name="from"
    )
    text: Annotated[str, Meta(min_length=1, max_length=TEXT_MAX, description="the message text")]
    subject: Subject | None = ""
    attachments: Annotated[list[Any], Meta(max_length=20, description="at most 20 attachments, as is")] = (
        msgspec.field(default_factory=list)
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.attachments, _ = free_form(self.attachments, "attachments")


# -- the web form --------------------------------------------------------------------------

# Form values are trimmed before use; each pattern allows the whitespace
# around the value it checks, so a value that passes is what is used.
_EMAIL: Final = rf"[^@{SPACE}]+@[^@{SPACE}]+\.[^@{SPACE}]+"
_PHONE_END: Final = r"[0-9()\-.]"
_PHONE: Final = rf"\+?{_PHONE_END}[0-9()\- .]{{2,30}}{_PHONE_END}"


class WebForm(Shape, kw_only=True, forbid_unknown_fields=False):
    """The public contact form (``POST /forms/case``), as a browser posts it.

    Other fields of the page are ignored; one needs an email or a phone
    number to answer."""

    # a message that says something, and a way to answer it (the "not blank"
    # rule is a group of its own rather than a pattern beside the length
    # limit: generators fold the two into one 64 Ki-long repetition)
    GIVEN = ((("message",), False), (("email", "phone"), False))

    name: ShortText = ""
    email: Annotated[
        str,
        Meta(
            max_length=254,
            pattern=rf"^{WS}*(?:{_EMAIL})?{WS}*{_END}",
            description="an email address like name@example.com (or give a phone number)",
        ),
    ] = ""
    phone: Annotated[
        str,
        Meta(
            pattern=rf"^{WS}*(?:{_PHONE})?{WS}*{_END}",
            description="a phone number: 4-32 digits, spaces, ( ) - . and a leading + (or give an email)",
        ),
    ] = ""
    category: Annotated[str, Meta(max_length=64, description="one of the center's form categories")] = ""
    subject: Subject = ""
    message: Annotated[str, Meta(max_length=TEXT_MAX, description="what the customer wants to tell us")]
    lang: Annotated[str, Meta(description="the page's language: en or ja")] = ""


# -- answers ------------------------------------------------------------------------------


class IntakeAnswer(Struct, kw_only=True):
    """A contact's case: created (201), or the case it joined or re-opened,
    or a repeat of one already taken (200)."""

    id: WorkId
    outcome: str
    agent_id: str | None
    queue: str
    customer: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    # the case's signed self-service link, for the customer (an auto-reply)
    status_url: str | msgspec.UnsetType = msgspec.UNSET


class HangupAnswer(Struct, kw_only=True):
    id: WorkId | None
    outcome: str


class FormAnswer(Struct, kw_only=True):
    """The form's answer as JSON (with ``Accept: application/json``)."""

    id: WorkId | None
    outcome: str
    queue: str | msgspec.UnsetType = msgspec.UNSET
    status_url: str | msgspec.UnsetType = msgspec.UNSET
