"""Seed a center for a load test through the admin API, and mint its tokens.

Creates the load-test queues (one per routing strategy, plus a high-priority
one) and N agents with a realistic spread of skills and queue memberships,
all with ``PUT`` (so seeding twice changes nothing), then mints an agent
token per agent plus a service and a supervisor token. Used by
`loadtests/locustfile.py` at test start, and as a CLI before a distributed
run::

    python -m loadtests.seed --url http://127.0.0.1:8000 --secret "$PRESENCE_SECRET" \\
        --agents 500 --out /tmp/tokens.json

The tokens file lets Locust workers run without the server's secret.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from presence.auth import mint

PREFIX = "lt"
# name -> settings; short push timeouts and wrap-ups so a few minutes of load
# exercise timeouts and automatic wrap-up ends too
QUEUES: dict[str, dict[str, Any]] = {
    "lt-support": {"strategy": "most_available", "push_timeout": 8, "wrapup_seconds": 6, "priority": 10},
    "lt-billing": {"strategy": "least_active", "push_timeout": 8, "wrapup_seconds": 6, "priority": 5},
    "lt-sales": {"strategy": "longest_idle", "push_timeout": 8, "wrapup_seconds": 6, "priority": 5},
    "lt-vip": {"strategy": "most_available", "push_timeout": 6, "wrapup_seconds": 6, "priority": 20},
}
SKILLS = ("english", "spanish", "billing", "tech")


def agent_ids(n: int, prefix: str = PREFIX) -> list[str]:
    return [f"{prefix}-agent-{i:05d}" for i in range(n)]


def agent_profile(index: int) -> dict[str, Any]:
    """A deterministic, realistic agent: everybody speaks English, some more."""
    rng = random.Random(index)
    skills = {"english": rng.randint(3, 9)}
    if rng.random() < 0.3:
        skills["spanish"] = rng.randint(2, 9)
    if rng.random() < 0.5:
        skills["billing"] = rng.randint(2, 8)
    if rng.random() < 0.4:
        skills["tech"] = rng.randint(2, 8)
    queues = ["lt-support"]
    for q, p in (("lt-billing", 0.5), ("lt-sales", 0.4), ("lt-vip", 0.25)):
        if rng.random() < p:
            queues.append(q)
    return {"name": f"Load agent {index}", "capacity": 100, "skills": skills, "queues": queues}


def admin_token(secret: str, ttl: int = 12 * 3600) -> str:
    return mint(secret, "loadtest", "service", ttl)


def agent_token(secret: str, agent_id: str, ttl: int = 12 * 3600) -> str:
    return mint(secret, agent_id, "agent", ttl)


def tokens(secret: str, n: int, prefix: str = PREFIX, ttl: int = 12 * 3600) -> dict[str, Any]:
    return {
        "service": mint(secret, "loadtest", "service", ttl),
        "supervisor": mint(secret, "loadtest-sup", "supervisor", ttl),
        "agents": {aid: agent_token(secret, aid, ttl) for aid in agent_ids(n, prefix)},
    }


def _put(base: str, token: str, path: str, body: dict[str, Any]) -> None:
    # urllib, not httpx: this also runs inside Locust, under gevent's monkey patching
    req = Request(
        f"{base}{path}",
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urlopen(req, timeout=30) as r:
            r.read()
    except HTTPError as exc:
        raise RuntimeError(f"PUT {path}: {exc.code} {exc.read()[:300]!r}") from None


def seed(base_url: str, token: str, n: int, prefix: str = PREFIX, threads: int = 8) -> list[str]:
    """Create (or update) the queues and N agents; returns the agent ids."""
    base = base_url.rstrip("/")
    for name, settings in QUEUES.items():
        _put(base, token, f"/api/v1/queues/{name}", settings)
    ids = agent_ids(n, prefix)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda i: _put(base, token, f"/api/v1/agents/{ids[i]}", agent_profile(i)), range(n)))
    return ids


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Seed load-test queues and agents; write tokens")
    p.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8000")
    p.add_argument("--secret", default=os.environ.get("PRESENCE_SECRET"), help="PRESENCE_SECRET")
    p.add_argument("--agents", type=int, default=200, help="agents to create (default 200)")
    p.add_argument("--prefix", default=PREFIX, help="agent id prefix (default lt)")
    p.add_argument("--out", help="write the tokens to this JSON file")
    a = p.parse_args(argv)
    if not a.secret:
        p.error("--secret (or PRESENCE_SECRET) is needed to mint the admin and agent tokens")
    ids = seed(a.url, admin_token(a.secret), a.agents, a.prefix)
    print(f"seeded {len(QUEUES)} queues and {len(ids)} agents at {a.url}")
    if a.out:
        Path(a.out).write_text(json.dumps(tokens(a.secret, a.agents, a.prefix)) + "\n", "utf-8")
        os.chmod(a.out, 0o600)
        print(f"tokens written to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
