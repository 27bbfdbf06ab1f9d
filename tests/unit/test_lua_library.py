"""The Lua function library is joined from its parts in the declared order
(`store/scripts.py` LIBRARY), every file of store/lua is either a part or a
script, and no part uses a helper that only a later part defines."""

from __future__ import annotations

import re
from pathlib import Path

from presence.store.scripts import LIBRARY, helpers, library, script_names, script_source

LUA_DIR = Path(__file__).resolve().parents[2] / "presence" / "store" / "lua"
# a top-level definition of the library: `local function f(` or `local a, b = ...`
TOP_LOCAL = re.compile(r"^local (?:function )?([A-Za-z_][\w, ]*?)\s*(?:=|\(|$)", re.M)
STRING = re.compile(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"")


def _code(text: str) -> str:
    """`text` without comments and string literals."""
    return "\n".join(STRING.sub("''", line.split("--")[0]) for line in text.splitlines())


def _defined(text: str) -> set[str]:
    return {n.strip() for m in TOP_LOCAL.finditer(_code(text)) for n in m.group(1).split(",")}


def test_library_is_joined_in_the_declared_order() -> None:
    joined = helpers()
    at = [
        joined.index(f"-- ==== {part}.lua ====\n{(LUA_DIR / f'{part}.lua').read_text('utf-8')}")
        for part in LIBRARY
    ]
    assert at == sorted(at), "parts out of the order of LIBRARY"
    assert at[0] == 0
    # the function library is the helpers, then every script as a function
    source, functions = library()
    assert source.startswith("#!lua name=presence_") and f"\n{joined}\n-- ==== " in source
    first_script = min(source.index(f"redis.register_function('{fn}'") for fn in functions.values())
    assert source.index(joined) < first_script
    assert joined in script_source("check")


def test_every_lua_file_is_a_library_part_or_a_script() -> None:
    files = {p.name for p in LUA_DIR.glob("*.lua")}
    parts = {f"{part}.lua" for part in LIBRARY}
    scripts = {f"{name}.lua" for name in script_names()}
    assert len(set(LIBRARY)) == len(LIBRARY)
    assert parts <= files, f"LIBRARY names missing files: {sorted(parts - files)}"
    assert not parts & scripts
    forgotten = files - parts - scripts
    assert not forgotten, f"neither in LIBRARY nor a script: {sorted(forgotten)}"
    # a part is named _lib_<area>; a file named like one is never loaded as a script
    assert all(p.startswith("_lib_") for p in LIBRARY)
    assert not any(n.startswith("_") for n in script_names())


def test_each_part_uses_only_itself_and_earlier_parts() -> None:
    """A helper is a local of the library: used before its part it would be
    an undefined global, an error only when that path first runs."""
    texts = [(LUA_DIR / f"{part}.lua").read_text("utf-8") for part in LIBRARY]
    owner: dict[str, int] = {}
    for i, text in enumerate(texts):
        for name in _defined(text):
            owner.setdefault(name, i)
    for i, text in enumerate(texts):
        code = _code(text)
        for name, j in owner.items():
            # a use: not a field (`.name`, `:name`) nor a table key (`name = `)
            if j > i and re.search(rf"(?<![.:\w]){name}\b(?!\s*=[^=])", code):
                raise AssertionError(f"{LIBRARY[i]}.lua uses {name}, defined later in {LIBRARY[j]}.lua")


def test_each_part_names_what_it_owns_and_relies_on() -> None:
    for part in LIBRARY:
        text = (LUA_DIR / f"{part}.lua").read_text("utf-8")
        header = text.split("\n\n")[0]
        assert header.startswith(f"-- {part}.lua: "), part
        assert "Relies on " in header, part


def test_every_script_opens_with_its_keys_and_argv() -> None:
    for name in script_names():
        lines = (LUA_DIR / f"{name}.lua").read_text("utf-8").splitlines()
        header = [line for line in lines[: next(i for i, x in enumerate(lines) if not x.startswith("--"))]]
        assert header[0].startswith(f"-- {name}.lua: "), name
        assert "-- KEYS[1] center prefix" in header, name
        assert any(line.startswith("-- ARGV[1] now (ms)") for line in header), name
