"""Reply templates (``/api/v1/templates``): named texts with placeholders,
for a kind of text (a reply, a note, or both), some channels, some queues
and a language.

A placeholder is a field name in braces (``{customer.name}``); ``{{`` and
``}}`` write a brace. The placeholders a template may use are
`PLACEHOLDERS`, and an unknown one is refused when the template is saved
(422 naming ``text``), never discovered when an agent uses it. The panel
fills them from the item in hand (``presence/static/js/agent.js``).
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta, Struct

from presence.schema.common import NOT_BLANK, ChannelName, FieldError, Name, QueueName, ReplyText, Shape

# what a placeholder may name: the item's customer, the agent, the case
PLACEHOLDERS: Final = (
    "customer.name",
    "customer.company",
    "customer.email",
    "customer.phone",
    "customer.id",
    "agent.name",
    "agent.id",
    "case.id",
    "case.subject",
    "case.status",
    "case.status_url",
    "queue.name",
    "queue.title",
    "channel",
)
_TOKEN: Final = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")

TemplateKind = Literal["reply", "note", "any"]
Language = Annotated[
    str,
    Meta(
        pattern=r"^(?:[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)?$",
        description="a language tag (en, ja, pt-BR), or empty for any language",
    ),
]
TemplateName = Annotated[
    str,
    Meta(min_length=1, max_length=200, pattern=NOT_BLANK, description="a name of 1-200 characters"),
]


def placeholders(text: str) -> list[str]:
    """The placeholders of a template's text; FieldError on ``text`` for an
    unknown one or a lone brace."""
    found: list[str] = []
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        if tok in ("{{", "}}"):
            continue
        name = m.group(1)
        if name is None:
            raise FieldError("text", f"has a lone {tok!r} at {m.start()}: write {tok * 2} for a brace")
        if name.strip() not in PLACEHOLDERS:
            raise FieldError(
                "text",
                f"has an unknown placeholder {{{name[:64]}}} (expected one of {', '.join(PLACEHOLDERS)})",
            )
        found.append(name.strip())
    return found


class TemplateInput(Shape, kw_only=True):
    """A reply template (``PUT /api/v1/templates/{template_id}``)."""

    name: TemplateName
    text: ReplyText
    kind: Annotated[TemplateKind, Meta(description="where the panel offers it: reply, note or any")] = "any"
    channels: Annotated[
        list[ChannelName], Meta(max_length=50, description="the channels it is for (empty: every channel)")
    ] = msgspec.field(default_factory=list)
    queues: Annotated[
        list[QueueName], Meta(max_length=200, description="the queues it is for (empty: every queue)")
    ] = msgspec.field(default_factory=list)
    language: Language = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        placeholders(self.text)


class Template(Struct, kw_only=True):
    """A template as stored, with the placeholders its text uses."""

    id: Name
    name: str
    text: str
    kind: str
    channels: list[str]
    queues: list[str]
    language: str
    placeholders: list[str]
    updated: int


class Templates(Struct, kw_only=True):
    templates: list[Template]
