"""The center's TOML file and the admin API bodies: defaults, and every bad
value rejected with the field named the way a supervisor would look for it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from presence.center import Invalid, load_center, parse_agent, parse_center, parse_queue


def test_shipped_example_loads() -> None:
    c = load_center(None)
    assert c.id == "default"
    assert c.statuses["Available"].routable is True
    assert c.statuses["Break"].reasons == ("Coffee", "Meeting", "Training")
    assert {n: (ch.weight, ch.cap) for n, ch in c.channels.items()} == {
        "voice": (100, 1),
        "video": (100, 1),
        "chat": (25, 0),
        "sms": (20, 0),
        "social": (20, 0),
        "email": (10, 0),
        "web": (10, 0),
    }
    assert c.agents["alice"].queues == ("support", "billing")
    assert c.agents["hanako"].name == "山田 花子"
    assert c.queues["billing"].strategy == "least_active"


def test_defaults_of_an_empty_file() -> None:
    c = parse_center({})
    assert c.id == "default"
    assert set(c.statuses) == {"Available", "Away", "Break", "Lunch", "Offline"}
    assert c.statuses["Break"].reasons == ("Coffee", "Meeting", "Training")
    assert c.channels["voice"].cap == 1 and c.channels["chat"].weight == 25
    assert (c.rules.login_status, c.rules.offline_status) == ("Away", "Offline")
    assert c.queues == {} and c.agents == {}


def test_agent_and_queue_defaults() -> None:
    a = parse_agent("zoe", {})
    assert (a.name, a.capacity, a.skills, a.queues) == ("zoe", 100, {}, ())
    q = parse_queue("q", {})
    assert (q.strategy, q.push_timeout, q.auto_accept, q.priority) == ("most_available", 30.0, False, 0)


def test_channel_override_keeps_other_defaults() -> None:
    c = parse_center({"channels": {"chat": {"weight": 50}, "fax": {"weight": 5, "cap": 2}}})
    assert (c.channels["chat"].weight, c.channels["chat"].cap) == (50, 0)
    assert (c.channels["fax"].weight, c.channels["fax"].cap) == (5, 2)
    assert c.channels["voice"].weight == 100


BAD: list[tuple[str, str]] = [
    ('[center]\nid = "Not OK"', "center.id"),
    ("[center]\nid = 5", "center.id"),
    ('[center]\ncolour = "red"', "center.colour"),
    ("surprise = 1", "surprise"),
    ('[[statuses]]\nname = "Ready"\nroutable = "yes"', "statuses[0].routable"),
    ("[[statuses]]\nroutable = true", "statuses[0].name"),
    ('[[statuses]]\nname = "Ready"\nreasons = [1]', "statuses[0].reasons[0]"),
    ('[[statuses]]\nname = "Ready"\ncolor = "green"', "statuses[0].color"),
    ('[rules]\nlogin_status = "Nowhere"', "rules.login_status"),
    ('[rules]\noffline_status = "Available"', "rules.offline_status"),
    ("[rules]\nmissed_offers_limit = -1", "rules.missed_offers_limit"),
    ("[rules]\nbogus = 1", "rules.bogus"),
    ("[channels.chat]\nweight = 0", "channels.chat.weight"),
    ('[channels.chat]\nweight = "heavy"', "channels.chat.weight"),
    ("[channels.voice]\ncap = -1", "channels.voice.cap"),
    ("[channels.voice]\nsize = 1", "channels.voice.size"),
    ('[[queues]]\nname = "q"\nstrategy = "random"', "queues[0].strategy"),
    ('[[queues]]\nname = "q"\npush_timeout = -5', "queues[0].push_timeout"),
    ('[[queues]]\nname = "bad name"', "queues[0].name"),
    ('[[queues]]\nstrategy = "least_active"', "queues[0].name"),
    ('[[agents]]\nid = "a"\ncapacity = 0', "agents[0].capacity"),
    ('[[agents]]\nid = "a"\ncapacity = true', "agents[0].capacity"),
    ('[[agents]]\nid = "a"\nskills = {english = 11}', "agents[0].skills.english"),
    ('[[agents]]\nid = "a"\nskills = {english = "good"}', "agents[0].skills.english"),
    ('[[agents]]\nid = "a"\nqueues = ["nope"]', "agents[0].queues[0]"),
    ('[[agents]]\nname = "No id"', "agents[0].id"),
    ('[[agents]]\nid = "a"\nshoe_size = 44', "agents[0].shoe_size"),
    ('agents = "everyone"', "agents"),
]


@pytest.mark.parametrize(("toml", "field"), BAD)
def test_bad_center_names_the_field(toml: str, field: str) -> None:
    with pytest.raises(Invalid) as info:
        parse_center(tomllib.loads(toml))
    assert info.value.field == field
    assert info.value.message


def test_load_center_names_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "center.toml"
    path.write_text('[[agents]]\nid = "a"\ncapacity = -3\n', "utf-8")
    with pytest.raises(Invalid) as info:
        load_center(path)
    assert str(path) in str(info.value) and "agents[0].capacity" in str(info.value)
    path.write_text("[center\nid=", "utf-8")
    with pytest.raises(Invalid) as info:
        load_center(path)
    assert "not valid TOML" in str(info.value)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"capacity": "lots"}, "capacity"),
        ({"capacity": 100_001}, "capacity"),
        ({"skills": {"english": 11}}, "skills.english"),
        ({"skills": {"bad skill": 5}}, "skills.bad skill"),
        ({"queues": [1]}, "queues[0]"),
        ({"name": 5}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"extension": 1001}, "extension"),
        ({"id": "other"}, "id"),
    ],
)
def test_api_agent_body_names_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(Invalid) as info:
        parse_agent("carol", body)
    assert info.value.field == field


def test_api_queue_body_names_the_field() -> None:
    with pytest.raises(Invalid) as info:
        parse_queue("q", {"strategy": "fifo"})
    assert info.value.field == "strategy" and "most_available" in info.value.message
    with pytest.raises(Invalid) as info:
        parse_queue("q", "not an object")
    assert info.value.field == "body"


def test_the_configuration_reference_is_the_schemas() -> None:
    """docs/configuration.md holds the table `presence.schema.center.reference`
    generates from `CenterFile`: a key added to the schema and not to the
    reference (or the other way) fails here."""
    from presence.schema.center import reference

    text = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text("utf-8")
    begin, end = "<!-- center-reference: begin (generated) -->\n", "<!-- center-reference: end -->"
    assert begin in text and end in text, "docs/configuration.md lost its generated reference"
    published = text.split(begin, 1)[1].split(end, 1)[0]
    assert published == reference(), "regenerate it: python -m presence.schema.center"
