"""The `presence` command: serve, token, check, backup, restore, archive, retain, center apply.

`presence serve` binds its port, starts the embedded Redis (when REDIS_URL
is unset) and reads or creates the secret (when PRESENCE_SECRET is unset)
*before* uvicorn, and hands them to the worker processes (the listening
socket itself, the rest through the environment): `--workers N` processes
share one port, one Redis and one secret, and the sign-in links it prints
work from the moment they are shown.

`presence token` and `presence check` use only data that is already there:
when the data folder holds nothing from a server (and no REDIS_URL or
PRESENCE_SECRET says where else to look) they refuse, naming where they
looked, rather than sign with a new secret or check a new, empty Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import errno
import logging
import os
import signal
import socket
import sys
import tomllib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from presence.auth import CENTER_ID as AUTH_CENTER_ID
from presence.auth import (
    CENTER_RULE,
    PLATFORM,
    ROLES,
    load_or_create_secret,
    mint,
    read_secret,
    secret_path,
)
from presence.center import Center, Invalid, load_center
from presence.config import ConfigError, Settings
from presence.embedded import EmbeddedRedis
from presence.store import Store, backup
from presence.store.client import Client

T = TypeVar("T")

log = logging.getLogger("presence")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# uvicorn's default; also the listen() backlog of the socket bound here
BACKLOG = 2048
POINT_AT_DATA = (
    "Run it where the server runs, or point it at the server's data: "
    "PRESENCE_DATA_DIR=<the server's data folder>"
)


class Refused(Exception):
    """The command cannot run as asked; the message says why and what to set."""


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


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _listen(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound here so that a port in use stops
    `serve` before it starts anything or prints a link that would not work."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise Refused(
                f"port {port} is already in use on {host} (another presence serve?): "
                "stop what listens there, or choose another port with --port or PRESENCE_PORT"
            ) from None
        raise Refused(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None
    return sock


def _log_config() -> dict[str, Any]:
    """uvicorn's logging configuration plus a root handler for our own loggers.

    uvicorn applies it here and again in every worker process it spawns: a
    worker is a fresh interpreter that never runs `main()`, so without the
    root handler its INFO lines ("presence ready", "demo running") would fall
    to logging's last-resort handler, which prints warnings only.
    """
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["presence"] = {"format": LOG_FORMAT}
    config["handlers"]["presence"] = {
        "class": "logging.StreamHandler",
        "formatter": "presence",
        "stream": "ext://sys.stderr",
    }
    config["root"] = {"handlers": ["presence"], "level": "INFO"}
    # httpx logs every request it sends at INFO: the demo's phone system
    # posting a call every few seconds filled the terminal that shows the
    # sign-in links; a failed delivery is logged by our own code
    for name in ("httpx", "httpcore"):
        config["loggers"][name] = {"level": "WARNING"}
    return config


def _base_url(host: str, port: int) -> str:
    if host in ("127.0.0.1", "0.0.0.0", "::", ""):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _links(secret: str, base: str, center: Center, demo: bool, ttl: int) -> list[str]:
    """Sign-in links: the demo's free agents (or the center's first) and the wallboard."""
    if demo:
        from presence.demo import FREE_AGENTS

        agents: Sequence[str] = FREE_AGENTS
    else:
        agents = list(center.agents)[:1]
    rows = [(f"agent panel ({a}):", f"{base}/agent#token={mint(secret, a, 'agent', ttl)}") for a in agents]
    rows.append(("wallboard:", f"{base}/wallboard#token={mint(secret, 'supervisor', 'supervisor', ttl)}"))
    width = max(len(label) for label, _ in rows)
    return [f"{label:<{width}} {url}" for label, url in rows]


def wire_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn settings of the HTTP and websocket wire, as `presence serve`
    runs them (the tests' in-process server takes the same)."""
    from presence.http.wire import HttpWire
    from presence.ws.wire import Wire

    return {
        # uvicorn's websockets-sansio protocol, with pings on the socket's budget
        "ws": Wire,
        "loop": "uvloop",
        # uvicorn's httptools protocol, a response in one write
        "http": HttpWire,
        "ws_max_size": settings.max_frame,
        # frames are small and mostly msgpack: compression would cost CPU
        # and a deflate context per socket for little gain
        "ws_per_message_deflate": False,
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 20.0,
        "timeout_graceful_shutdown": 10,
    }


def _serve(settings: Settings, args: argparse.Namespace, sock: socket.socket) -> None:
    """Run uvicorn on the socket bound here, in this process or in N workers.

    Not `uvicorn.run(fd=...)`: uvicorn takes a descriptor for a unix socket,
    and uvloop then serves TCP as a pipe (no TCP_NODELAY: 40 ms per small
    reply). Given the socket object itself, `Server.run` and uvicorn's
    `Multiprocess` supervisor (what `uvicorn.run` uses for --workers) serve
    it as TCP.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        "presence.app:create_app",
        factory=True,
        host=settings.host,
        port=sock.getsockname()[1],
        workers=args.workers,
        log_config=_log_config(),
        log_level=settings.log_level,
        access_log=args.access_log,
        backlog=BACKLOG,
        **wire_options(settings),
    )
    # uvicorn shuts down gracefully on SIGTERM, restores this handler and then
    # re-raises the signal; a graceful stop is a clean exit (0), not a death
    # by signal, for supervisors (systemd, Kubernetes) and for the tests.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has stopped gracefully
        pass


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    center = load_center(settings.center_config)  # fail now, naming the bad field
    sock = _listen(settings.host, settings.port)
    data_dir = settings.data_dir.absolute()
    embedded = None
    try:
        if settings.redis_url is None:
            embedded = EmbeddedRedis(data_dir)
            if not embedded.has_data():
                print(
                    f"new data folder {data_dir}: nothing from an earlier run there, so the embedded "
                    f"Redis starts empty (`presence check` and `presence token` run elsewhere "
                    f"find it with PRESENCE_DATA_DIR={data_dir})",
                    file=sys.stderr,
                )
            os.environ["REDIS_URL"] = embedded.start()
            print(
                f"embedded Redis: {os.environ['REDIS_URL']} (data in {embedded.redis_dir})",
                file=sys.stderr,
            )
        secret = settings.secret
        if secret is None:
            secret, created = load_or_create_secret(data_dir)
            if created:
                print(f"created a new signing secret in {secret_path(data_dir)}", file=sys.stderr)
        os.environ["PRESENCE_SECRET"] = secret
        # the workers read their settings from the environment: --host and
        # --port reach them too (the demo's phone system posts to this address)
        os.environ["PRESENCE_HOST"] = settings.host
        os.environ["PRESENCE_PORT"] = str(sock.getsockname()[1])
        if args.demo:
            os.environ["PRESENCE_DEMO"] = "1"
        base = _base_url(settings.host, sock.getsockname()[1])
        print(f"listening on {base}", file=sys.stderr)
        if settings.secret is None or args.demo:
            for line in _links(secret, base, center, args.demo, settings.token_ttl):
                print(line, file=sys.stderr)
        _serve(settings, args, sock)
    finally:
        sock.close()
        if embedded is not None:
            embedded.stop()
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    secret = settings.secret or read_secret(settings.data_dir)
    if secret is None:
        raise Refused(
            f"no signing secret to sign with: PRESENCE_SECRET is unset and there is no "
            f"{secret_path(settings.data_dir.absolute())}, so no server has run with this data folder. "
            f"{POINT_AT_DATA}, or PRESENCE_SECRET=<the server's secret>."
        )
    if args.center is not None and args.role == PLATFORM:
        raise Refused("a platform token belongs to no center: leave out --center")
    try:
        print(mint(secret, args.sub, args.role, args.ttl or settings.token_ttl, center=args.center))
    except ValueError as exc:
        raise Refused(str(exc)) from None
    return 0


async def _check(redis: Client, where: str, center_ids: list[str] | None) -> list[tuple[str, str, list[str]]]:
    """Check each center (every center in Redis when `center_ids` is None):
    (center, where it lives, its breaches) per center."""
    from presence.store.client import shard_of

    if center_ids is None:
        # every center a server has run here (sync_center writes its
        # statuses); on a cluster redis-py scans every primary
        found = {
            k.decode()[len("presence:{") : -len("}:statuses")]
            async for k in redis.scan_iter(match="presence:{*}:statuses", count=1000)
        }
        center_ids = sorted(found)
        if not center_ids:
            raise Refused(f"no center has data in the Redis at {where}")
    out = []
    for center_id in center_ids:
        store = await _center_store(
            redis,
            center_id,
            where,
            ": no server has run it there. Check REDIS_URL (or PRESENCE_DATA_DIR) and the center "
            "(PRESENCE_CONFIG, or --center).",
        )
        node = shard_of(redis, store.keys.prefix)
        shard = "standalone Redis" if node is None else f"shard {node.name}, slot {_slot(store.keys.prefix)}"
        out.append((center_id, shard, await store.check()))
    return out


def _open_redis(settings: Settings, what: str, *, fresh: bool = False) -> tuple[str, EmbeddedRedis | None]:
    """The Redis a command works on: REDIS_URL, or the embedded one of the
    data folder, which must hold a server's data (refused, naming where it
    looked, so that a new empty Redis is never taken for the center) unless
    the command fills a `fresh` one."""
    if settings.redis_url is not None:
        return settings.redis_url, None
    embedded = EmbeddedRedis(settings.data_dir)
    if not fresh and not embedded.has_data():
        raise Refused(
            f"no data to {what}: REDIS_URL is unset and {embedded.redis_dir} holds no embedded "
            f"Redis data, so no server has run with this data folder. {POINT_AT_DATA}, "
            "or REDIS_URL=<the URL of the Redis it uses>."
        )
    return embedded.start(), embedded


def _on_redis(
    settings: Settings, what: str, work: Callable[[Client, str], Awaitable[T]], *, fresh: bool = False
) -> T:
    """Run ``work(redis, where)`` on the command's Redis (`_open_redis`),
    `where` naming it for a message (no credentials); the client is closed
    and an embedded Redis stopped after, whatever happened."""

    async def run(url: str) -> T:
        from presence.store.client import open_redis

        redis = await open_redis(url, settings.redis_mode, patience=5.0)
        try:
            return await work(redis, url.split("@")[-1])
        finally:
            await redis.aclose()

    url, embedded = _open_redis(settings, what, fresh=fresh)
    try:
        return asyncio.run(run(url))
    finally:
        if embedded is not None:
            embedded.stop()


async def _center_store(redis: Client, center_id: str, where: str, why: str = "") -> Store:
    """The store of a center that has data in this Redis (refused otherwise)."""
    store = Store(redis, center_id)
    if not await store.exists():
        raise Refused(f"center {center_id!r} has no data in the Redis at {where}{why}")
    return store


def _slot(key: str) -> int:
    from redis.crc import key_slot

    return int(key_slot(key.encode()))


def cmd_check(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    center = load_center(settings.center_config)
    center_ids = None if args.all else (args.center or [center.id])
    results = _on_redis(settings, "check", lambda redis, where: _check(redis, where, center_ids))
    failed = 0
    for center_id, where, breaches in results:
        for b in breaches:
            print(f"BREACH: {b}")
        if breaches:
            failed += 1
            print(f"{len(breaches)} invariant breach(es) in center {center_id} ({where})")
        else:
            print(f"all invariants hold in center {center_id} ({where})")
    return 1 if failed else 0


def cmd_backup(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    center_id = args.center or load_center(settings.center_config).id

    async def dump(redis: Client, where: str) -> backup.Snapshot:
        return await backup.dump(await _center_store(redis, center_id, where))

    summary = backup.write(_on_redis(settings, "back up", dump), Path(args.dir))
    print(f"backed up center {summary.center}: {summary.keys} keys in {summary.path}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    folder = Path(args.dir)
    manifest, rows = backup.read(folder, args.center)
    center_id = str(manifest["center"])

    async def restore(redis: Client, where: str) -> tuple[int, list[str]]:
        store = Store(redis, center_id)
        n = await backup.restore(store, rows, replace=args.replace)
        return n, await store.check()

    # a new data folder is the usual target: its embedded Redis starts empty
    n, breaches = _on_redis(settings, "restore into", restore, fresh=True)
    where = (
        "REDIS_URL"
        if settings.redis_url is not None
        else f"the embedded Redis of {settings.data_dir.absolute()}"
    )
    print(f"restored center {center_id}: {n} keys into {where}")
    for b in breaches:
        print(f"BREACH: {b}")
    return 1 if breaches else 0


def _day(value: str, flag: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{flag} must be a date such as 2026-01-31, got {value!r}") from None


def cmd_archive(args: argparse.Namespace) -> int:
    from presence.services.archive import archive

    settings = Settings.from_env()
    center_id = args.center or load_center(settings.center_config).id
    folder = Path(args.dir) if args.dir else settings.archive_dir
    if folder is None:
        raise Refused("no folder to archive into: pass --dir DIR or set PRESENCE_ARCHIVE_DIR")
    since = _day(args.since, "--since")
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    until = _day(args.until, "--until") if args.until else today
    if until < since:
        raise ConfigError(f"--until ({until}) is before --since ({since})")
    days = _on_redis(
        settings,
        "archive",
        lambda redis, _: archive(Store(redis, center_id), folder, since, until, settings.timezone),
    )
    for day, n in sorted(days.items()):
        print(f"{day}: {n} items in {folder / center_id / f'{day}.ndjson.gz'}")
    print(f"archived {sum(days.values())} items of center {center_id}, {since} to {until}")
    return 0


def cmd_retain(args: argparse.Namespace) -> int:
    from presence.store.archive import retain_all

    settings = Settings.from_env()
    center_id = args.center or load_center(settings.center_config).id
    if settings.retention_days <= 0:
        raise Refused("PRESENCE_RETENTION_DAYS is 0 (keep forever): there is no expiry to give")

    async def retain(redis: Client, where: str) -> int:
        store = await _center_store(redis, center_id, where)
        # the scripts read the retention from the center's rules (sync_center),
        # and keep the rules until `settings:version` goes (_lib_config.lua)
        pipe = redis.pipeline(transaction=True)
        pipe.hset(store.keys.rules, "retention_ms", int(settings.retention_days * 86_400_000))
        pipe.delete(store.keys.settings_version)
        await pipe.execute()
        return await retain_all(store)

    n = _on_redis(settings, "retain", retain)
    print(
        f"{n} finished items of center {center_id} had no expiry; they expire "
        f"{settings.retention_days:g} days after they ended (at once if that has passed)"
    )
    return 0


def cmd_center_apply(args: argparse.Namespace) -> int:
    """`presence center apply FILE [--center NAME]`: what PUT /api/v1/centers/{center} does."""
    from presence.services.centers import apply, parse_document, unredacted

    settings = Settings.from_env()
    default = load_center(settings.center_config)
    path = Path(args.file)
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise Refused(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise Invalid(str(path), f"is not valid TOML: {exc}") from None
    head = data.get("center")
    center_id = args.center or (head.get("id") if isinstance(head, dict) else None) or "default"
    if args.center is not None and isinstance(head, dict):
        # --center names the center: the file's own id gives way
        data = {**data, "center": {k: v for k, v in head.items() if k != "id"}}
    if not AUTH_CENTER_ID.match(center_id):
        raise Refused(f"the center (--center) must be {CENTER_RULE}, got {center_id!r}")
    if center_id == default.id:
        raise Refused(
            f"center {center_id!r} is this deployment's default center (PRESENCE_CONFIG): "
            "change that file and restart the servers instead"
        )
    try:
        # refused before any Redis is opened or started
        parse_document(center_id, data)
    except Invalid as exc:
        raise Invalid(f"{path}: {exc.field}", exc.message, exc.path) from None

    async def put(redis: Client, where: str) -> tuple[int, bool, list[str]]:
        try:
            # a webhook secret as GET shows it keeps the stored one
            center = parse_document(center_id, await unredacted(redis, center_id, data))
        except Invalid as exc:
            raise Invalid(f"{path}: {exc.field}", exc.message, exc.path) from None
        return await apply(redis, center, timezone=settings.timezone, retention_days=settings.retention_days)

    rev, created, _ = _on_redis(settings, "apply a center to", put)
    print(f"center {center_id} {'created' if created else 'updated'} (revision {rev})")
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
    t.add_argument("--center", help="the center the token acts on (default: the deployment's default center)")
    t.set_defaults(func=cmd_token)

    w = sub.add_parser("center", help="manage the deployment's centers (workspaces)")
    wsub = w.add_subparsers(dest="action", required=True)
    wa = wsub.add_parser("apply", help="create or change a center from a center file (no restart)")
    wa.add_argument("file", help="the center file (TOML)")
    wa.add_argument("--center", help="the center's id (default: the file's [center] id)")
    wa.set_defaults(func=cmd_center_apply)

    c = sub.add_parser("check", help="verify the routing invariants on the live Redis; exit 1 on a breach")
    c.add_argument(
        "--center", action="append", help="center id, may be repeated (default: the one in PRESENCE_CONFIG)"
    )
    c.add_argument("--all", action="store_true", help="every center that has data in this Redis")
    c.set_defaults(func=cmd_check)

    b = sub.add_parser("backup", help="write a consistent copy of the center's Redis data into a folder")
    b.add_argument("dir", help="folder of the backup (created if missing; its files are replaced)")
    b.add_argument("--center", help="center id (default: the one in PRESENCE_CONFIG)")
    b.set_defaults(func=cmd_backup)

    r = sub.add_parser("restore", help="restore a backup folder into REDIS_URL or the data folder's Redis")
    r.add_argument("dir", help="folder written by `presence backup`")
    r.add_argument("--center", help="refuse unless the backup is of this center")
    r.add_argument("--replace", action="store_true", help="delete the center's keys there first")
    r.set_defaults(func=cmd_restore)

    a = sub.add_parser("archive", help="write finished cases, per day, to gzip NDJSON files")
    a.add_argument("--since", required=True, help="first day (YYYY-MM-DD, the center's time zone)")
    a.add_argument("--until", help="last day (default: today, so far)")
    a.add_argument("--dir", help="folder (default PRESENCE_ARCHIVE_DIR); files go to DIR/<center>/")
    a.add_argument("--center", help="center id (default: the one in PRESENCE_CONFIG)")
    a.set_defaults(func=cmd_archive)

    k = sub.add_parser(
        "retain", help="give finished items kept from before PRESENCE_RETENTION_DAYS the expiry it sets"
    )
    k.add_argument("--center", help="center id (default: the one in PRESENCE_CONFIG)")
    k.set_defaults(func=cmd_retain)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        return int(args.func(args))
    except (ConfigError, Invalid) as exc:
        print(f"presence: configuration error: {exc}", file=sys.stderr)
        return 2
    except (Refused, backup.BackupError) as exc:
        print(f"presence {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
