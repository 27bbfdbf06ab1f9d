"""The Lua function library is joined from its parts in the declared order
(`store/scripts.py` LIBRARY), every file of store/lua is either a part or a
script, no part uses a helper that only a later part defines, each part's
header names what it relies on, and each script opens with KEYS/ARGV."""

from __future__ import annotations

import re
from pathlib import Path

from presence.store.scripts import LIBRARY, READ_ONLY, helpers, library, script_names, script_source

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
    first_script = min(
        source.index(f"redis.register_function{{function_name = '{fn}'") for fn in functions.values()
    )
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


def _uses() -> list[dict[str, int]]:
    """For each part, the names of the library it uses, with the index of
    the part that defines each. A use is not a field (`.name`, `:name`) nor
    a table key (`name = `)."""
    texts = [(LUA_DIR / f"{part}.lua").read_text("utf-8") for part in LIBRARY]
    owner: dict[str, int] = {}
    for i, text in enumerate(texts):
        for name in _defined(text):
            owner.setdefault(name, i)
    return [
        {
            n: j
            for n, j in owner.items()
            if j != i and re.search(rf"(?<![.:\w]){n}\b(?!\s*=[^=])", _code(text))
        }
        for i, text in enumerate(texts)
    ]


def test_each_part_uses_only_itself_and_earlier_parts() -> None:
    """A helper is a local of the library: used before its part it would be
    an undefined global, an error only when that path first runs."""
    for i, uses in enumerate(_uses()):
        later = {n: LIBRARY[j] for n, j in uses.items() if j > i}
        assert not later, f"{LIBRARY[i]}.lua uses names defined in later parts: {later}"


def test_each_part_names_what_it_owns_and_relies_on() -> None:
    for part, uses in zip(LIBRARY, _uses(), strict=True):
        header = (LUA_DIR / f"{part}.lua").read_text("utf-8").split("\n\n")[0]
        assert header.startswith(f"-- {part}.lua: "), part
        relies = header[header.index("Relies on ") :]
        unnamed = sorted(f"{n} ({LIBRARY[j]})" for n, j in uses.items() if not re.search(rf"\b{n}\b", relies))
        assert not unnamed, f"{part}.lua's header does not say it relies on {unnamed}"
        for j in set(uses.values()):
            assert f"{LIBRARY[j]}.lua" in relies, f"{part}.lua's header does not name {LIBRARY[j]}.lua"


def test_every_script_opens_with_its_keys_and_argv() -> None:
    for name in script_names():
        lines = (LUA_DIR / f"{name}.lua").read_text("utf-8").splitlines()
        header = lines[: next(i for i, x in enumerate(lines) if not x.startswith("--"))]
        assert header[0].startswith(f"-- {name}.lua: "), name
        assert "-- KEYS[1] center prefix" in header, name
        assert any(line.startswith("-- ARGV[1] now (ms)") for line in header), name


def test_only_the_reads_are_registered_without_writes() -> None:
    # a full Redis (maxmemory, noeviction) runs `no-writes` functions only:
    # the reads are flagged, and every script that may write is not
    source, functions = library()
    flagged = {name for name, fn in functions.items() if f"'{fn}', flags = {{'no-writes'}}" in source}
    assert flagged == set(READ_ONLY)
