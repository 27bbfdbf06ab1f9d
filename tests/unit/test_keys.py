"""Every Redis key is named in `presence/store/keys.py`, and the Lua scripts
build the same names with `key(...)` (see store/lua/_lib_core.lua)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from presence.store.keys import Keys, scan_match
from presence.store.scripts import helpers

LUA_DIR = Path(__file__).resolve().parents[2] / "presence" / "store" / "lua"
KEY_CALL = re.compile(r"\bkey\(([^()]*(?:\([^()]*\)[^()]*)*)\)")
LITERAL = re.compile(r"^'([^']*)'$|^\"([^\"]*)\"$")


def _split_args(args: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in args:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def lua_patterns() -> dict[str, set[str]]:
    """Each key name the Lua builds, variables as `*`, with the files using it."""
    found: dict[str, set[str]] = {}
    for path in sorted(LUA_DIR.glob("*.lua")):
        for m in KEY_CALL.finditer(path.read_text("utf-8")):
            args = _split_args(m.group(1))
            if args[-1:] == ["..."]:
                continue  # the definition of key() itself
            parts = []
            for a in args:
                lit = LITERAL.match(a)
                parts.append((lit.group(1) or lit.group(2) or "") if lit else "*")
            found.setdefault(":".join(parts), set()).add(path.name)
    return found


def python_patterns() -> dict[str, str]:
    """Each key name keys.py spells (arguments as `*`), by attribute name."""
    k = Keys("c")
    out: dict[str, str] = {}
    for name, member in inspect.getmembers(Keys):
        if name.startswith("_") or name in ("center", "prefix"):
            continue
        if isinstance(member, property):
            value = getattr(k, name)
        elif inspect.isfunction(member):
            params = list(inspect.signature(member).parameters)[1:]
            value = getattr(k, name)(*["*"] * len(params))
        else:
            continue
        if isinstance(value, str) and value.startswith(k.prefix):
            out[value.removeprefix(k.prefix)] = name
    return out


def test_prefix_carries_the_hash_tag() -> None:
    k = Keys("default")
    assert k.prefix == "presence:{default}:"
    assert k.agent("alice") == "presence:{default}:agent:alice"
    assert k.queue_waiting("support") == "presence:{default}:queue:support:waiting"
    assert k.status_stream == "presence:{default}:stream:status"
    assert k.events_channel == "presence:{default}:events"
    assert k.leases == "presence:{default}:timer:leases"
    assert k.graces == "presence:{default}:timer:graces"


def test_every_python_key_carries_the_prefix() -> None:
    k = Keys("x")
    for name in python_patterns().values():
        attr = getattr(k, name)
        value = attr if isinstance(attr, str) else attr(*["a"] * (len(inspect.signature(attr).parameters)))
        assert value.startswith("presence:{x}:"), name


def test_lua_builds_keys_from_the_prefix_only() -> None:
    lib = helpers()
    # the prefix is the call's first key, set by `enter`; `key` only appends to it
    assert "  P = keys[1]\n" in lib
    assert "  EVENTS = P .. 'events'\n" in lib
    body = lib[lib.index("local function key(") : lib.index("\nend\n", lib.index("local function key("))]
    returns = re.findall(r"return (.*)", body)
    assert len(returns) == 4 and all(r.startswith("P .. ") for r in returns), returns
    for path in LUA_DIR.glob("*.lua"):
        lines = path.read_text("utf-8").splitlines()
        text = "\n".join(line.split("--")[0] for line in lines)  # code only, not comments
        # no script names a key by hand: only key(...) or the prefix P
        assert "presence:" not in text, path.name
        assert not re.search(r"KEYS\[[2-9]\]", text), path.name


def test_lua_first_segments_exist_in_keys_py() -> None:
    first_lua = {p.split(":")[0] for p in lua_patterns()}
    first_py = {p.split(":")[0] for p in python_patterns()}
    missing = sorted(first_lua - first_py)
    assert not missing, f"Lua builds keys whose first segment keys.py does not know: {missing}"


@pytest.mark.parametrize("pattern", sorted(lua_patterns()))
def test_each_lua_key_is_spelled_in_keys_py(pattern: str) -> None:
    py = python_patterns()
    files = ", ".join(sorted(lua_patterns()[pattern]))
    assert pattern in py, f"{files} builds key {pattern!r}, which presence/store/keys.py does not name"


def test_lua_concatenated_suffixes_match_keys_py() -> None:
    """`ak .. ':offers'` where ak = key('agent', aid) must be a named key too."""
    py = python_patterns()
    for path in LUA_DIR.glob("*.lua"):
        text = path.read_text("utf-8")
        for var, args in re.findall(r"local (\w+) = key\(([^()]*)\)", text):
            base = ":".join(
                (m.group(1) or m.group(2)) if (m := LITERAL.match(a)) else "*" for a in _split_args(args)
            )
            for suffix in re.findall(rf"\b{var} \.\. '(:[a-z_:]+)'", text):
                assert base + suffix in py, f"{path.name}: {var} .. {suffix!r}"


def test_scan_match_takes_a_prefix_literally() -> None:
    # SCAN's glob characters in a prefix match only themselves; the braces
    # of the hash tag are not special to SCAN and stay as they are
    assert scan_match("presence:{a[b]*?\\}:") == "presence:{a\\[b\\]\\*\\?\\\\}:*"
    assert scan_match(Keys("default").prefix) == "presence:{default}:*"
