"""The schema layer: every inbound shape, defined once, as msgspec Structs.

Decoding a document with its Struct *is* its validation, in one pass: the
HTTP bodies (``admin``, ``work``, ``cases``, ``channels``), the center file
(``center``) and the websocket messages (``messages``) all come through
here. The published documents (``/openapi.json``, ``/asyncapi.json``) are
generated from the same Structs, so they cannot drift from what the server
accepts. The rules about single values (names, skills, priority, text
limits) are the constrained types of ``common``.

A refusal is an `Invalid` naming the field the way a person looks for it
(``agents[2].skills.english``), with its JSON Pointer (``/agents/2/skills/english``)
and a sentence; the HTTP layer answers it as a problem, the center file
loader prefixes the file name. msgspec reports a dict value as
``skills[...]`` and a bad key as "`key` in `$.skills`"; `Invalid` finds the
entry and names it.
"""

from __future__ import annotations

import re
import types
from collections.abc import Sequence
from functools import cache
from typing import Annotated, Any, Final, Literal, TypeVar, Union, get_args, get_origin

import msgspec
from msgspec import Meta

from presence.schema.common import FieldError

T = TypeVar("T")
Segment = str | int


class Invalid(ValueError):
    """A value breaks its schema; `field` says which one, `message` how.

    `path` is the field as segments (names and list positions), `field` the
    same as text (``agents[2].skills.english``; ``body`` for the whole
    document) and `pointer` as a JSON Pointer."""

    def __init__(
        self, field: str, message: str, path: Sequence[Segment] = (), *, status: int = 422, reason: str = ""
    ) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.path = tuple(path)
        self.status = status
        # msgspec's own words for the refusal, when it was msgspec's
        self.reason = reason

    @classmethod
    def at(cls, path: Sequence[Segment], message: str, *, status: int = 422, reason: str = "") -> Invalid:
        return cls(field_name(path), message, path, status=status, reason=reason)

    @property
    def pointer(self) -> str:
        return "".join("/" + str(s).replace("~", "~0").replace("/", "~1") for s in self.path)


class Malformed(ValueError):
    """The bytes are not a JSON document at all."""


def field_name(path: Sequence[Segment]) -> str:
    """``("agents", 2, "skills", "english")`` -> ``agents[2].skills.english``."""
    out = ""
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else seg)
    return out or "body"


# -- decoding ------------------------------------------------------------------------


@cache
def _decoder(tp: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(tp)


def decode(raw: bytes, tp: type[T]) -> T:
    """A JSON document as `tp`; `Invalid` or `Malformed` when it is not one."""
    try:
        return _decoder(tp).decode(raw)  # type: ignore[no-any-return, arg-type]
    except msgspec.ValidationError as exc:
        # the slow path, only for a refusal: the untyped document locates it
        # (a type refused early may hide bytes that are no JSON at all)
        try:
            data = msgspec.json.decode(raw)
        except msgspec.DecodeError as bad:
            raise Malformed(str(bad)) from None
        return _retry(data, tp, exc)
    except msgspec.DecodeError as exc:
        raise Malformed(str(exc)) from None


def convert(data: Any, tp: type[T]) -> T:
    """Python data (a TOML table, a form) as `tp`; `Invalid` when it is not one."""
    try:
        return msgspec.convert(data, tp)
    except msgspec.ValidationError as exc:
        return _retry(data, tp, exc)


_WHOLE_FLOAT: Final = re.compile(r"^Expected `int[^`]*`, got `float`")


def _retry(data: Any, tp: type[T], exc: msgspec.ValidationError) -> T:
    """`exc` as an `Invalid`, unless what was refused is a whole number
    written as a float (``2.0``), which JSON counts as the integer it equals:
    that value is taken as the integer and the document tried again."""
    for _ in range(64):
        found = explain(tp, data, exc)
        value = _at(data, found.path)
        if not (_WHOLE_FLOAT.match(found.reason) and isinstance(value, float) and value.is_integer()):
            raise found from None
        data = _replace(data, found.path, int(value))
        try:
            return msgspec.convert(data, tp)
        except msgspec.ValidationError as again:
            exc = again
    raise explain(tp, data, exc) from None


def _at(data: Any, path: Sequence[Segment]) -> Any:
    for seg in path:
        data = _child(data, seg)
    return data


def _replace(data: Any, path: Sequence[Segment], new: Any) -> Any:
    """`data` with the value at `path` replaced (a copy along the path)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(data, list) and isinstance(head, int):
        return [*data[:head], _replace(data[head], rest, new), *data[head + 1 :]]
    if isinstance(data, dict):
        key = head if head in data else next((k for k in data if str(k) == str(head)), head)
        return {**data, key: _replace(data[key], rest, new)}
    return data


def value(data: Any, tp: Any, field: str) -> Any:
    """One value (a path parameter, a header) as `tp`; `Invalid` names `field`."""
    try:
        return msgspec.convert(data, tp)
    except msgspec.ValidationError as exc:
        found = explain(tp, data, exc)
        raise Invalid.at((field, *found.path), found.message) from None


# -- naming a refusal ------------------------------------------------------------------

_AT: Final = re.compile(r"^(?P<text>.*?)(?: - at `(?P<key>key` in `)?(?P<path>\$[^`]*)`)?$", re.S)
_SEG: Final = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_UNKNOWN: Final = re.compile(r"^Object contains unknown field `(.*)`$", re.S)
_MISSING: Final = re.compile(r"^Object missing required field `(.*)`$", re.S)
_EXPECTED: Final = re.compile(r"^Expected `([^`]*)`(?:, got `([^`]*)`)?(.*)$", re.S)
_WHAT: Final = {
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}


def explain(tp: Any, data: Any, exc: msgspec.ValidationError) -> Invalid:
    """`exc` (raised decoding `data` as `tp`) as an `Invalid` naming the field."""
    m = _AT.match(str(exc))
    assert m is not None  # the pattern matches any text
    text, where = m["text"], m["path"] or "$"
    path: list[Segment] = []
    node, sub = data, tp
    for name, index in _SEG.findall(where[1:]):
        if index == "...":
            # a dict's value: find the entry that fails, and explain it there
            value_tp = _dict_types(sub)[1]
            for k, v in node.items() if isinstance(node, dict) else ():
                try:
                    msgspec.convert(v, value_tp)
                except msgspec.ValidationError as inner:
                    found = explain(value_tp, v, inner)
                    return Invalid.at(
                        [*path, str(k), *found.path], found.message, status=found.status, reason=found.reason
                    )
            return Invalid.at(path, _sentence(text, sub), reason=text)
        seg: Segment = int(index) if index else name
        path.append(seg)
        node = _child(node, seg)
        sub = _member(sub, seg)
    if m["key"]:
        key_tp = _dict_types(sub)[0]
        for k in node if isinstance(node, dict) else ():
            try:
                msgspec.convert(k, key_tp)
            except msgspec.ValidationError:
                return Invalid.at([*path, str(k)], f"is not {_description(key_tp) or 'a valid key'}")
        return Invalid.at(path, "has a key that is not valid")
    cause = exc.__cause__
    if isinstance(cause, FieldError):
        return Invalid.at([*path, *_split(cause.field)], cause.message, status=cause.status)
    if u := _UNKNOWN.match(text):
        struct = _struct(sub)
        known = sorted(f.encode_name for f in msgspec.structs.fields(struct)) if struct else []
        hint = f" (expected one of {', '.join(known)})" if known else ""
        return Invalid.at([*path, u[1]], f"is not a known field{hint}")
    if r := _MISSING.match(text):
        field_tp = _member(sub, r[1])
        what = _description(field_tp)
        return Invalid.at([*path, r[1]], f"is required ({what})" if what else "is required")
    return Invalid.at(path, _sentence(text, sub), reason=text)


def _sentence(text: str, tp: Any) -> str:
    """msgspec's "Expected `int` <= 10" as "must be a level from 1 to 10"."""
    choices = _literals(tp)
    if choices:
        return f"must be one of {', '.join(str(c) for c in choices)}"
    what = _description(tp)
    if what:
        return f"must be {what}"
    e = _EXPECTED.match(text)
    if e is None:
        return text[:1].lower() + text[1:]
    names = [_WHAT.get(k.strip(), k.strip()) for k in e[1].split("|")]
    kinds = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 2 else names)
    rest = e[3].strip()
    if rest.startswith("of length"):
        return f"must be {kinds} of length {rest[len('of length') :].strip()}"
    return f"must be {kinds}" + (f" {rest}" if rest else "")


def _split(field: str) -> list[Segment]:
    return [int(i) if i else n for n, i in re.findall(r"([^.\[\]]+)|\[(\d+)\]", field)]


def _child(node: Any, seg: Segment) -> Any:
    try:
        return node[seg]
    except (KeyError, IndexError, TypeError):
        return None


# -- walking the type of a path ------------------------------------------------------------


def _strip(tp: Any) -> tuple[Any, list[Meta]]:
    """`tp` without its Annotated wrappers (and a TypeAliasType's name), and their Metas."""
    metas: list[Meta] = []
    while True:
        if get_origin(tp) is Annotated:
            args = get_args(tp)
            metas += [a for a in args[1:] if isinstance(a, Meta)]
            tp = args[0]
        elif hasattr(tp, "__value__"):
            tp = tp.__value__
        else:
            return tp, metas


def _options(tp: Any) -> list[Any]:
    base, _ = _strip(tp)
    if get_origin(base) in (Union, types.UnionType):
        return [o for a in get_args(base) for o in _options(a)]
    return [tp]


def _struct(tp: Any) -> type[msgspec.Struct] | None:
    for option in _options(tp):
        base, _ = _strip(option)
        if isinstance(base, type) and issubclass(base, msgspec.Struct):
            return base
    return None


def _dict_types(tp: Any) -> tuple[Any, Any]:
    for option in _options(tp):
        base, _ = _strip(option)
        if get_origin(base) is dict:
            key, value = get_args(base)
            return key, value
    return Any, Any


def _member(tp: Any, seg: Segment) -> Any:
    """The type of `seg` (a field name or a list position) inside `tp`."""
    if isinstance(seg, str):
        struct = _struct(tp)
        if struct is not None:
            for f in msgspec.structs.fields(struct):
                if f.encode_name == seg:
                    return f.type
            return Any
        return _dict_types(tp)[1]
    for option in _options(tp):
        base, _ = _strip(option)
        if get_origin(base) in (list, tuple, set, frozenset):
            args = get_args(base)
            return args[0] if args else Any
    return Any


def _description(tp: Any) -> str:
    """The outermost description on `tp` (or on its one non-null option)."""
    _, metas = _strip(tp)
    for meta in metas:
        if meta.description:
            return meta.description
    options = [o for o in _options(tp) if _strip(o)[0] not in (type(None), msgspec.UnsetType)]
    if len(options) == 1 and options[0] is not tp:
        return _description(options[0])
    return ""


def _literals(tp: Any) -> list[Any]:
    values: list[Any] = []
    for option in _options(tp):
        base, _ = _strip(option)
        if get_origin(base) is Literal:
            values += list(get_args(base))
    return values
