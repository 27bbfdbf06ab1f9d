"""Process settings, read once from the environment into a frozen object.

Every setting has a documented default; a bad value fails at start with a
`ConfigError` naming the variable, never later in the middle of a request.
The center's own configuration (statuses, channels, queues, agents) is a TOML
file described in `presence.center`; this module only locates it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _int(env: Mapping[str, str], name: str, default: int, *, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _host(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    if any(c.isspace() for c in value) or "/" in value:
        raise ConfigError(f"{name} must be a host name or IP address to bind, got {value!r}")
    return value


def _dir(env: Mapping[str, str], name: str, default: str) -> Path:
    path = Path(env.get(name) or default)
    # the folder may not exist yet (it is created at start), but whatever part
    # of it exists must be a folder: catch a file in the way before serving
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"{name} must name a folder, but {str(probe)!r} is a file")
    return path


def _timezone(env: Mapping[str, str], name: str, default: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    value = env.get(name) or default
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name} must be an IANA time zone such as Europe/Paris, got {value!r}") from None
    return value


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a `presence` process needs, with the defaults documented in README."""

    # Where the truth lives. None means: start the embedded Redis in data_dir.
    redis_url: str | None = None
    # What REDIS_URL names: "auto" asks it; "standalone" or "cluster" say so.
    redis_mode: str = "auto"
    # Replicas a change must reach before it is acknowledged (WAIT); None:
    # one where the center's shard has replicas, none otherwise. Past the
    # timeout (seconds) the call answers 503 / `unavailable`.
    wait_replicas: int | None = None
    wait_timeout: float = 1.0
    host: str = "127.0.0.1"
    port: int = 8000
    # HS256 key for bearer tokens. None means: create one in data_dir (serve only).
    secret: str | None = None
    # The center's TOML file. None means: the example shipped with the package.
    center_config: Path | None = None
    data_dir: Path = Path("var")
    # Seconds an agent's state is kept after its last socket went away.
    grace_seconds: float = 30.0
    # A socket that sends nothing (not even a ping) for this long is closed.
    heartbeat_timeout: float = 60.0
    # Lease on a socket's registration in Redis, renewed by its process; a
    # killed process's sockets count as gone once their lease runs out.
    lease_seconds: float = 15.0
    # How often the sweeper looks for expired offers, wrap-ups, leases, graces.
    sweep_interval: float = 0.2
    # Supervisor deltas are flushed at most this often per socket.
    supervisor_flush: float = 0.1
    # A center other than the default one that has had no event for
    # `quiet_after` seconds is quiet: its timers are swept, with every other
    # quiet center's, once per `idle_interval` (any event of it brings its
    # own loops back at once).
    idle_interval: float = 2.0
    quiet_after: float = 10.0
    token_ttl: int = 12 * 3600
    allowed_origins: tuple[str, ...] = ()
    max_frame: int = 64 * 1024
    # Per-socket message budget (messages per second, burst); abuse closes 1008.
    rate_per_second: float = 50.0
    rate_burst: int = 200
    log_level: str = "info"
    extra: Mapping[str, str] = field(default_factory=dict)
    # KPI history (presence/kpi/): days the raw event streams are kept, days
    # the hourly/daily roll-ups are kept, the time zone whose midnight starts
    # "today" and the days of reports, seconds between live `kpis` pushes.
    history_days: float = 31.0
    rollup_days: float = 400.0
    # Minutes per roll-up part (a divisor of 60): an hour is rolled up in
    # parts of this long, each a minute after it closed, and the streams can
    # be trimmed up to the last part (with a short history_days).
    rollup_minutes: int = 60
    # How far a server's clock may be from Redis's (stream ids are Redis's,
    # an event's ts its server's): the streams are never trimmed closer
    # than this behind the roll-up's cursor, or an event stamped after the
    # cursor by a clock that far ahead of Redis would go before it is
    # rolled up. A property of the deployment's clocks (NTP keeps them
    # within ms; 5 minutes tolerates a badly drifting host), not of the
    # parts or the retention: it costs this long of the streams in Redis.
    # At most the 5 minutes every read of a time range widens itself by
    # (kpi/history.py MARGIN_MS): an event kept for a larger skew would be
    # kept but never read.
    clock_margin_seconds: float = 300.0
    # Days a finished (completed or abandoned) item, its history, case and
    # comments are kept after it ended (0 = forever); `presence archive`
    # writes them out before that, into archive_dir once a day when set.
    retention_days: float = 90.0
    archive_dir: Path | None = None
    timezone: str = "UTC"
    kpi_interval: float = 1.0
    # When set, GET /metrics needs it as a bearer token.
    metrics_token: str | None = None
    # Log where the event loop was when it stalls this long (0 = off).
    stall_ms: float = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        cfg = env.get("PRESENCE_CONFIG") or None
        if cfg is not None and not Path(cfg).is_file():
            raise ConfigError(f"PRESENCE_CONFIG names {cfg!r}, which is not a readable file")
        level = env.get("PRESENCE_LOG_LEVEL", "info").lower()
        if level not in {"critical", "error", "warning", "info", "debug", "trace"}:
            raise ConfigError(f"PRESENCE_LOG_LEVEL must be one of debug, info, warning, error; got {level!r}")
        url = env.get("REDIS_URL") or None
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"REDIS_URL must start with redis://, rediss:// or unix://, got {url!r}")
        mode = (env.get("PRESENCE_REDIS_MODE") or "auto").lower()
        if mode not in ("auto", "standalone", "cluster"):
            raise ConfigError(f"PRESENCE_REDIS_MODE must be auto, standalone or cluster, got {mode!r}")
        wait = (env.get("PRESENCE_REDIS_WAIT_REPLICAS") or "auto").lower()
        wait_replicas = None if wait == "auto" else _int(env, "PRESENCE_REDIS_WAIT_REPLICAS", 0, lo=0, hi=16)
        secret = env.get("PRESENCE_SECRET") or None
        if secret is not None and len(secret) < 32:
            raise ConfigError("PRESENCE_SECRET must be at least 32 characters long")
        return cls(
            redis_url=url,
            redis_mode=mode,
            wait_replicas=wait_replicas,
            wait_timeout=_float(env, "PRESENCE_REDIS_WAIT_TIMEOUT", 1.0, lo=0.01, hi=60.0),
            host=_host(env, "PRESENCE_HOST", "127.0.0.1"),
            port=_int(env, "PRESENCE_PORT", 8000, lo=0, hi=65535),
            secret=secret,
            center_config=Path(cfg) if cfg else None,
            data_dir=_dir(env, "PRESENCE_DATA_DIR", "var"),
            grace_seconds=_float(env, "PRESENCE_GRACE_SECONDS", 30.0, lo=0.0, hi=86400.0),
            heartbeat_timeout=_float(env, "PRESENCE_HEARTBEAT_TIMEOUT", 60.0, lo=1.0, hi=3600.0),
            lease_seconds=_float(env, "PRESENCE_LEASE_SECONDS", 15.0, lo=0.5, hi=3600.0),
            sweep_interval=_float(env, "PRESENCE_SWEEP_INTERVAL", 0.2, lo=0.01, hi=10.0),
            supervisor_flush=_float(env, "PRESENCE_SUPERVISOR_FLUSH", 0.1, lo=0.01, hi=10.0),
            idle_interval=_float(env, "PRESENCE_IDLE_INTERVAL", 2.0, lo=0.05, hi=60.0),
            quiet_after=_float(env, "PRESENCE_QUIET_AFTER", 10.0, lo=0.1, hi=3600.0),
            token_ttl=_int(env, "PRESENCE_TOKEN_TTL", 12 * 3600, lo=1, hi=366 * 86400),
            allowed_origins=_list(env, "PRESENCE_ALLOWED_ORIGINS"),
            max_frame=_int(env, "PRESENCE_MAX_FRAME", 64 * 1024, lo=1024, hi=16 * 1024 * 1024),
            rate_per_second=_float(env, "PRESENCE_RATE_PER_SECOND", 50.0, lo=1.0, hi=1e6),
            rate_burst=_int(env, "PRESENCE_RATE_BURST", 200, lo=1, hi=1_000_000),
            log_level=level,
            # below a day, "today"'s reports come from the roll-ups (whole
            # parts), and below ~0.05 (72 min) a rebuilt live tracker's
            # sliding windows start where the streams do (docs/kpis.md)
            history_days=_float(env, "PRESENCE_HISTORY_DAYS", 31.0, lo=0.0001, hi=3660.0),
            rollup_minutes=_rollup_minutes(env),
            clock_margin_seconds=_float(env, "PRESENCE_CLOCK_MARGIN_SECONDS", 300.0, lo=1.0, hi=300.0),
            rollup_days=_float(env, "PRESENCE_ROLLUP_DAYS", 400.0, lo=1.0, hi=36600.0),
            retention_days=_float(env, "PRESENCE_RETENTION_DAYS", 90.0, lo=0.0, hi=36600.0),
            archive_dir=_dir(env, "PRESENCE_ARCHIVE_DIR", "") if env.get("PRESENCE_ARCHIVE_DIR") else None,
            timezone=_timezone(env, "PRESENCE_TIMEZONE", "UTC"),
            kpi_interval=_float(env, "PRESENCE_KPI_INTERVAL", 1.0, lo=0.05, hi=60.0),
            metrics_token=env.get("PRESENCE_METRICS_TOKEN") or None,
            stall_ms=_float(env, "PRESENCE_STALL_MS", 0.0, lo=0.0, hi=60_000.0),
        )


def _rollup_minutes(env: Mapping[str, str]) -> int:
    n = _int(env, "PRESENCE_ROLLUP_MINUTES", 60, lo=1, hi=60)
    if 60 % n:
        raise ConfigError(f"PRESENCE_ROLLUP_MINUTES must divide 60 (1, 2, 3, 5, 10, 15, 30 ...), got {n}")
    return n
