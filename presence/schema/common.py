"""The shared constrained types: every rule about one value, written once.

Each type is a `typing.Annotated` msgspec type: decoding a document with it
*is* the check, its `Meta` is the JSON Schema the published documents show,
and its description is the sentence an error gives ("skills.english must be
a level from 1 to 10"). A rule about one value lives here and nowhere else;
a shape (which fields a body has) lives in the schema module of its area.

Patterns are written in the common subset of Python's `re` and ECMA-262 (the
dialect of JSON Schema), so the server and a client generated from the
document agree on every string. They end in ``(?!\\n)$`` rather than ``$``:
in Python ``$`` also matches before a trailing newline, ECMA's does not.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Final

import orjson
from msgspec import Meta, Struct

# -- patterns -------------------------------------------------------------------

_END: Final = r"(?!\n)$"
NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}" + _END
# a center id, also the first part of a customer link of its center (cases.LinkToken)
CENTER_CHARS: Final = r"[a-z0-9][a-z0-9_-]{0,31}"
CENTER_PATTERN: Final = f"^{CENTER_CHARS}{_END}"
# Python's whitespace (what `str.isspace`, `str.strip` and `re`'s `\s` mean),
# spelled out: in the ECMA-262 dialect that JSON Schema patterns are read in,
# `\s` leaves out \x1c-\x1f and \x85, so a client generating from the
# published pattern made "valid" values the server refused.
SPACE: Final = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
WS: Final = f"[{SPACE}]"
# a value that holds something other than whitespace (a "given" text)
NOT_BLANK: Final = f"[^{SPACE}]"

# -- names and ids --------------------------------------------------------------

_NAME: Final = "1-64 letters, digits or _ . @ -, starting with a letter or digit"
# A name of the center's configuration: agent ids, queue, channel, skill and
# status names. Names are keys in Redis and in URLs, hence the narrow alphabet.
Name = Annotated[str, Meta(pattern=NAME_PATTERN, description=f"a name: {_NAME}")]
AgentId = Annotated[str, Meta(pattern=NAME_PATTERN, description=f"an agent id: {_NAME}")]
QueueName = Annotated[str, Meta(pattern=NAME_PATTERN, description=f"a queue name: {_NAME}")]
ChannelName = Annotated[str, Meta(pattern=NAME_PATTERN, description=f"a channel name: {_NAME}")]
SkillName = Annotated[str, Meta(pattern=NAME_PATTERN, description=f"a skill name: {_NAME}")]
CustomerId = Annotated[str, Meta(pattern=NAME_PATTERN, description=f"a customer id: {_NAME}")]
CenterId = Annotated[
    str, Meta(pattern=CENTER_PATTERN, description="a center id: 1-32 lowercase letters, digits, _ or -")
]
# A status or reason as an agent's panel shows it (free text, bounded).
StatusName = Annotated[str, Meta(max_length=64, description="a status name of at most 64 characters")]
Reason = Annotated[str, Meta(max_length=128, description="a reason code of at most 128 characters")]
# A work item id as the server hands it out (new_work_id in presence/store).
WorkId = Annotated[str, Meta(max_length=256, description="a work item id")]

# An optional reference to a name: "" (or no field) means none.
OPTIONAL_NAME_PATTERN: Final = r"^(?:[A-Za-z0-9][A-Za-z0-9_.@-]{0,63})?" + _END
OptionalAgentId = Annotated[
    str, Meta(pattern=OPTIONAL_NAME_PATTERN, description=f"an agent id ({_NAME}) or empty")
]
OptionalQueueName = Annotated[
    str, Meta(pattern=OPTIONAL_NAME_PATTERN, description=f"a queue name ({_NAME}) or empty")
]

# -- numbers ----------------------------------------------------------------------

LEVEL_MIN, LEVEL_MAX = 1, 10
# Item priority is folded into one sorted-set score together with the arrival
# time (wait_score in store/lua/_lib_queue.lua), which keeps it exact within this range.
PRIORITY_MIN, PRIORITY_MAX = -99, 99

Level = Annotated[
    int, Meta(ge=LEVEL_MIN, le=LEVEL_MAX, description=f"a level from {LEVEL_MIN} to {LEVEL_MAX}")
]
# skill name -> level: an agent's levels, or the minimum levels an item needs
Skills = Annotated[
    dict[SkillName, Level],
    Meta(description=f"an object of skill name to level {LEVEL_MIN}-{LEVEL_MAX} ({{}} for none)"),
]
Priority = Annotated[
    int,
    Meta(
        ge=PRIORITY_MIN,
        le=PRIORITY_MAX,
        description=f"a whole number from {PRIORITY_MIN} to {PRIORITY_MAX} (higher is served first)",
    ),
]
QueuePriority = Annotated[
    int, Meta(ge=-1000, le=1000, description="a whole number from -1000 to 1000 (higher is routed first)")
]
Capacity = Annotated[int, Meta(ge=1, le=100_000, description="a whole number of units from 1 to 100000")]
Weight = Annotated[int, Meta(ge=1, le=100_000, description="a whole number of units from 1 to 100000")]
ChannelCap = Annotated[int, Meta(ge=0, le=1000, description="a whole number from 0 (no cap) to 1000")]
Seconds = Annotated[float, Meta(ge=0, le=86400, description="seconds from 0 to 86400")]
Ratio = Annotated[float, Meta(ge=0, le=1, description="a fraction from 0 to 1")]

# -- text ---------------------------------------------------------------------------

SUBJECT_MAX: Final = 1000
NOTE_MAX: Final = 4000
TEXT_MAX: Final = 64 * 1024
REF_MAX: Final = 500

Subject = Annotated[
    str, Meta(max_length=SUBJECT_MAX, description=f"a subject of at most {SUBJECT_MAX} characters")
]
Note = Annotated[str, Meta(max_length=NOTE_MAX, description=f"a note of at most {NOTE_MAX} characters")]
# a note that must say something (the text of a timeline note)
NoteText = Annotated[
    str,
    Meta(
        max_length=NOTE_MAX,
        pattern=NOT_BLANK,
        description=f"the note's text: at most {NOTE_MAX} characters, not blank",
    ),
]
REPLY_MAX: Final = 20_000
# what an agent sends the customer (a reply, a template's text)
ReplyText = Annotated[
    str,
    Meta(
        max_length=REPLY_MAX,
        pattern=NOT_BLANK,
        description=f"the reply's text: at most {REPLY_MAX} characters, not blank",
    ),
]
Text = Annotated[str, Meta(max_length=TEXT_MAX, description=f"text of at most {TEXT_MAX} characters")]
ShortText = Annotated[str, Meta(max_length=200, description="text of at most 200 characters")]

IDEMPOTENCY_KEY_MAX: Final = 200
IdempotencyKey = Annotated[
    str,
    Meta(
        max_length=IDEMPOTENCY_KEY_MAX,
        description=f"a client's key for one item, at most {IDEMPOTENCY_KEY_MAX} characters",
    ),
]

# -- rules across fields ---------------------------------------------------------------


class FieldError(ValueError):
    """A rule across fields broken in a Struct's ``__post_init__``; msgspec
    wraps it in its ValidationError (with the Struct's path), and
    `presence.schema.Invalid` names `field` below that path."""

    def __init__(self, field: str, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        # the HTTP status of the refusal when it is not a plain invalid field
        # (413: more than a body may hold)
        self.status = status


def given(value: Any) -> bool:
    """A text field counts as given when it holds more than whitespace."""
    return isinstance(value, str) and value.strip() != ""


def require_given(obj: Any, names: tuple[str, ...], *, exactly_one: bool = False) -> None:
    """At least one (or exactly one) of these text fields is given; the
    check `alternatives` describes in JSON Schema."""
    got = [n for n in names if given(getattr(obj, n))]
    if exactly_one and len(got) > 1:
        raise FieldError(names[0], f"and {' and '.join(names[1:])} must not both be given (give exactly one)")
    if not got:
        rest = " or ".join(names[1:])
        raise FieldError(names[0], f"is required (or give {rest})" if rest else "is required")


def alternatives(names: tuple[str, ...], *, exactly_one: bool = False) -> dict[str, Any]:
    """JSON Schema for `require_given` (merge into a Struct's schema)."""
    # "not only whitespace" rather than a pattern of one non-space character:
    # generators fold a lone character class into the field's length limit,
    # and asked for a value past a 64 Ki limit they draw 64 Ki+1 repetitions,
    # more than Hypothesis can
    blank = {"pattern": f"^{WS}*{_END}"}
    branches = [{"required": [n], "properties": {n: {"type": "string", "not": blank}}} for n in names]
    return {"oneOf" if exactly_one else "anyOf": branches}


class Shape(Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of an inbound JSON object: fields by name (a subclass declares
    ``kw_only=True`` too), unknown fields refused.

    `GIVEN` lists groups of text fields of which at least one (or, with
    True, exactly one) must be given; the check runs after decoding and the
    published schema states the same groups (`alternatives`). A subclass
    with its own ``__post_init__`` calls ``super().__post_init__()``."""

    GIVEN: ClassVar[tuple[tuple[tuple[str, ...], bool], ...]] = ()

    def __post_init__(self) -> None:
        for names, exactly_one in self.GIVEN:
            require_given(self, names, exactly_one=exactly_one)

    @classmethod
    def json_schema_extra(cls) -> dict[str, Any]:
        """What the published schema adds to msgspec's for this shape."""
        groups = [alternatives(names, exactly_one=one) for names, one in cls.GIVEN]
        if len(groups) == 1:
            return groups[0]
        return {"allOf": groups} if groups else {}


# 2**63: msgpack (how items are stored) holds signed 64-bit whole numbers
_INT_LIMIT: Final = 1 << 63


def plain(value: Any) -> Any:
    """A free-form JSON value (a payload, attributes) as the store can keep it:
    a whole number beyond 64 bits becomes a float, as a JSON parser that reads
    numbers as doubles would read it (ValueError past a double's range)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -_INT_LIMIT <= value < _INT_LIMIT:
            return value
        try:
            return float(value)
        except OverflowError:
            raise ValueError("holds a number too large to keep") from None
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def free_form(value: Any, field: str, limit: int | None = None) -> tuple[Any, int]:
    """A free-form value made storable (`plain`) and its size in bytes of
    JSON, refused (`FieldError` on `field`) past `limit` bytes."""
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError:
        try:
            value = plain(value)
        except ValueError as exc:
            raise FieldError(field, str(exc)) from None
        size = len(orjson.dumps(value))
    if limit is not None and size > limit:
        raise FieldError(field, f"must be at most {limit} bytes of JSON")
    return value, size
