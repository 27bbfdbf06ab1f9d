"""Answers every route shares: a problem (RFC 9457) and a health status."""

from __future__ import annotations

from typing import Annotated

from msgspec import UNSET, Meta, Struct, UnsetType

_FIELD = "the field that was wrong: items[2].skills.english"
_POINTER = "where that field is in the body, a JSON Pointer: /items/2/skills/english"


class Problem(Struct, kw_only=True):
    """A refusal (``application/problem+json``): what went wrong and, for a
    bad field, which one and where it is in the body."""

    type: str
    title: str
    status: int
    detail: str
    field: Annotated[str, Meta(description=_FIELD)] | UnsetType = UNSET
    pointer: Annotated[str, Meta(description=_POINTER)] | UnsetType = UNSET


class Health(Struct, kw_only=True):
    """The process answers (``ok``) or can serve (``ready``)."""

    status: str
