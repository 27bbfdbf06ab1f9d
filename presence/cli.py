"""The `presence` command: serve, token, check.

`presence serve` starts the embedded Redis (when REDIS_URL is unset) and the
secret (when PRESENCE_SECRET is unset) *before* uvicorn, and hands both to
the worker processes through the environment, so `--workers N` processes
share one Redis and one secret.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from types import FrameType

from presence.auth import ROLES, load_or_create_secret, mint
from presence.center import Invalid, load_center
from presence.config import ConfigError, Settings
from presence.embedded import EmbeddedRedis

log = logging.getLogger("presence")


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    if getattr(args, "host", None):
        if any(c.isspace() for c in args.host) or "/" in args.host:
            raise ConfigError(f"--host must be a host name or IP address to bind, got {args.host!r}")
        settings = replace(settings, host=args.host)
    if getattr(args, "port", None) is not None:
        if not 0 <= args.port <= 65535:
            raise ConfigError(f"--port must be between 0 and 65535, got {args.port}")
        settings = replace(settings, port=args.port)
    return settings


def _secret(settings: Settings) -> str:
    if settings.secret:
        return settings.secret
    secret, created = load_or_create_secret(settings.data_dir)
    if created:
        print(f"created a new signing secret in {settings.data_dir / 'secret'}", file=sys.stderr)
    return secret


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings(args)
    center = load_center(settings.center_config)  # fail now, naming the bad field
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedded = None
    if settings.redis_url is None:
        embedded = EmbeddedRedis(settings.data_dir)
        os.environ["REDIS_URL"] = embedded.start()
        print(
            f"embedded Redis: {os.environ['REDIS_URL']} (data in {embedded.data_dir / 'redis'})",
            file=sys.stderr,
        )
    os.environ["PRESENCE_SECRET"] = _secret(settings)
    # the workers read their settings from the environment: --host and
    # --port reach them too (the demo's phone system posts to this address)
    os.environ["PRESENCE_HOST"] = settings.host
    os.environ["PRESENCE_PORT"] = str(settings.port)
    if args.demo:
        os.environ["PRESENCE_DEMO"] = "1"
    host = "localhost" if settings.host in ("127.0.0.1", "0.0.0.0", "::") else settings.host
    base = f"http://{host}:{settings.port}"
    if settings.secret is None or args.demo:
        first = next(iter(center.agents), None)
        if first:
            agent_token = mint(os.environ["PRESENCE_SECRET"], first, "agent", settings.token_ttl)
            print(f"agent panel ({first}): {base}/agent#token={agent_token}", file=sys.stderr)
        sup_token = mint(os.environ["PRESENCE_SECRET"], "supervisor", "supervisor", settings.token_ttl)
        print(f"wallboard:           {base}/wallboard#token={sup_token}", file=sys.stderr)
    if args.demo:
        from presence.demo import links

        for line in links(os.environ["PRESENCE_SECRET"], base, settings.token_ttl):
            print(line, file=sys.stderr)
    # uvicorn shuts down gracefully on SIGTERM, restores this handler and then
    # re-raises the signal; a graceful stop is a clean exit (0), not a death
    # by signal, for supervisors (systemd, Kubernetes) and for the tests.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        uvicorn.run(
            "presence.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=args.workers,
            ws="websockets-sansio",
            loop="uvloop",
            http="httptools",
            ws_max_size=settings.max_frame,
            # frames are small and mostly msgpack: compression would cost CPU
            # and a deflate context per socket for little gain
            ws_per_message_deflate=False,
            ws_ping_interval=20.0,
            ws_ping_timeout=20.0,
            log_level=settings.log_level,
            access_log=args.access_log,
            timeout_graceful_shutdown=10,
        )
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    print(mint(_secret(settings), args.sub, args.role, args.ttl or settings.token_ttl))
    return 0


async def _check(url: str, center_id: str) -> list[str]:
    from presence.app import redis_client
    from presence.store import Store

    redis = redis_client(url)
    try:
        return await Store(redis, center_id).check()
    finally:
        await redis.aclose()


def cmd_check(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    center = load_center(settings.center_config)
    center_id = args.center or center.id
    embedded = None
    url = settings.redis_url
    if url is None:
        embedded = EmbeddedRedis(settings.data_dir)
        url = embedded.start()
    try:
        breaches = asyncio.run(_check(url, center_id))
    finally:
        if embedded is not None:
            embedded.stop()
    for b in breaches:
        print(f"BREACH: {b}")
    if breaches:
        print(f"{len(breaches)} invariant breach(es) in center {center_id}")
        return 1
    print(f"all invariants hold in center {center_id}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="presence", description="Agent presence and omni-channel routing server")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the server (starts an embedded Redis when REDIS_URL is unset)")
    s.add_argument("--host", help="address to bind (PRESENCE_HOST, default 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (PRESENCE_PORT, default 8000)")
    s.add_argument("--workers", type=int, default=1, help="server processes sharing the port (default 1)")
    s.add_argument("--demo", action="store_true", help="seed a sample center and simulate traffic")
    s.add_argument("--access-log", action="store_true", help="log every HTTP request")
    s.set_defaults(func=cmd_serve)

    d = sub.add_parser("demo", help="the same as `serve --demo`: a sample center with simulated traffic")
    d.add_argument("--host", help="address to bind (PRESENCE_HOST, default 127.0.0.1)")
    d.add_argument("--port", type=int, help="port (PRESENCE_PORT, default 8000)")
    d.add_argument("--workers", type=int, default=1, help="server processes sharing the port (default 1)")
    d.add_argument("--access-log", action="store_true", help="log every HTTP request")
    d.set_defaults(func=cmd_serve, demo=True)

    t = sub.add_parser("token", help="print a signed bearer token")
    t.add_argument("--role", required=True, choices=ROLES)
    t.add_argument("--sub", required=True, help="subject: the agent id, or a supervisor or service name")
    t.add_argument("--ttl", type=int, help="lifetime in seconds (PRESENCE_TOKEN_TTL, default 12 h)")
    t.set_defaults(func=cmd_token)

    c = sub.add_parser("check", help="verify the routing invariants on the live Redis; exit 1 on a breach")
    c.add_argument("--center", help="center id (default: the one in PRESENCE_CONFIG)")
    c.set_defaults(func=cmd_check)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except (ConfigError, Invalid) as exc:
        print(f"presence: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
