"""Reply templates over HTTP: create, replace, read, list filtered by channel,
queue, language and kind, delete; an unknown placeholder (or a lone brace)
is refused when the template is saved, naming the field."""

from __future__ import annotations

from tests.harness import ServerProcess, token
from tests.integration import channels_http

SUP = {"Authorization": f"Bearer {token('supervisor', 'sue')}"}
AGENT = {"Authorization": f"Bearer {token('agent', 'alice')}"}


def put(server: ServerProcess, tid: str, body: object, who: dict[str, str] = SUP) -> tuple[int, dict]:
    r = channels_http.put(f"{server.http}/api/v1/templates/{tid}", json=body, headers=who)
    return r.status_code, (r.json() if r.content else {})


def names(server: ServerProcess, query: str = "") -> list[str]:
    r = channels_http.get(f"{server.http}/api/v1/templates{query}", headers=AGENT)
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.json()["templates"]]


async def test_templates_crud_filters_and_placeholders(server: ServerProcess) -> None:
    status, t = put(
        server,
        "greet-en",
        {
            "name": "Greeting",
            "text": "Hello {customer.name}, this is {agent.name} about case {case.id}.",
            "kind": "reply",
            "channels": ["email", "chat"],
            "language": "en",
        },
    )
    assert status == 201, t
    assert t["placeholders"] == ["customer.name", "agent.name", "case.id"] and t["updated"] > 0
    status, t = put(
        server,
        "greet-ja",
        {
            "name": "ご挨拶",
            "text": "{customer.name} 様、担当の{agent.name}です。",
            "kind": "reply",
            "language": "ja",
        },
    )
    assert status == 201, t
    status, _ = put(
        server,
        "billing-note",
        {"name": "Billing note", "text": "Refund checked {{ok}}", "kind": "note", "queues": ["billing"]},
    )
    assert status == 201
    # replaced: 200, the new text
    status, t = put(
        server,
        "greet-en",
        {
            "name": "Greeting",
            "text": "Hi {customer.name}!",
            "channels": ["email"],
            "language": "en",
            "kind": "reply",
        },
    )
    assert status == 200 and t["text"] == "Hi {customer.name}!"
    got = channels_http.get(f"{server.http}/api/v1/templates/greet-ja", headers=AGENT).json()
    assert got["name"] == "ご挨拶" and got["language"] == "ja"

    assert names(server) == ["billing-note", "greet-en", "greet-ja"]
    assert names(server, "?channel=email&language=en") == ["billing-note", "greet-en"]
    assert names(server, "?channel=chat&language=en-GB&kind=reply") == []
    assert names(server, "?channel=chat&language=ja&kind=reply") == ["greet-ja"]
    assert names(server, "?queue=support&kind=note") == []
    assert names(server, "?queue=billing&kind=note") == ["billing-note"]

    # refused when saved, naming the field
    for text, words in (
        ("Dear {customer.nmae}", "unknown placeholder {customer.nmae}"),
        ("a lone { brace", "lone '{'"),
        ("", "text"),
    ):
        status, p = put(server, "bad", {"name": "Bad", "text": text})
        assert status == 422 and p["field"] == "text" and words in p["detail"], p
    status, p = put(server, "bad", {"name": "Bad", "text": "x", "channels": ["no such!"]})
    assert status == 422 and p["field"] == "channels[0]", p
    status, p = put(server, "bad", {"name": "Bad", "text": "x", "language": "Japanese"})
    assert status == 422 and p["field"] == "language", p
    status, p = put(server, "bad", {"name": "Bad", "text": "x", "kind": "sms"})
    assert status == 422 and p["field"] == "kind", p
    status, p = put(server, "bad id!", {"name": "Bad", "text": "x"})
    assert status == 422 and p["field"] == "id", p
    r = channels_http.get(f"{server.http}/api/v1/templates?language=Japanese", headers=AGENT)
    assert r.status_code == 422 and r.json()["field"] == "language"
    assert channels_http.get(f"{server.http}/api/v1/templates/bad", headers=AGENT).status_code == 404
    # agents read, never write
    status, _ = put(server, "mine", {"name": "Mine", "text": "x"}, AGENT)
    assert status == 403
    r = channels_http.delete(f"{server.http}/api/v1/templates/greet-ja", headers=SUP)
    assert r.status_code == 204
    assert channels_http.delete(f"{server.http}/api/v1/templates/greet-ja", headers=SUP).status_code == 404
    assert names(server) == ["billing-note", "greet-en"]
