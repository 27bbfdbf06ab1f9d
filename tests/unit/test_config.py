"""Settings are read once from the environment; a bad value fails at start,
naming the variable."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from presence.config import ConfigError, Settings

GOOD_SECRET = "s" * 32


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.redis_url is None and s.secret is None and s.center_config is None
    assert (s.host, s.port, s.data_dir) == ("127.0.0.1", 8000, Path("var"))
    assert (s.grace_seconds, s.lease_seconds, s.heartbeat_timeout) == (30.0, 15.0, 60.0)
    assert (s.sweep_interval, s.supervisor_flush, s.max_frame) == (0.2, 0.1, 64 * 1024)
    assert (s.rate_per_second, s.rate_burst, s.token_ttl, s.log_level) == (50.0, 200, 43200, "info")
    assert s.allowed_origins == ()
    assert s.redis_mode == "auto"
    assert (s.retention_days, s.archive_dir) == (90.0, None)


def test_retention_and_archive(tmp_path: Path) -> None:
    s = Settings.from_env({"PRESENCE_RETENTION_DAYS": "0", "PRESENCE_ARCHIVE_DIR": str(tmp_path / "a")})
    assert (s.retention_days, s.archive_dir) == (0.0, tmp_path / "a")


def test_clock_margin() -> None:
    """The streams' trim keeps the clock margin behind the roll-up's cursor:
    5 minutes unless the deployment states its clocks agree closer."""
    assert Settings.from_env({}).clock_margin_seconds == 300.0
    s = Settings.from_env({"PRESENCE_CLOCK_MARGIN_SECONDS": "20"})
    assert s.clock_margin_seconds == 20.0


def test_every_variable_is_read(tmp_path: Path) -> None:
    cfg = tmp_path / "center.toml"
    cfg.write_text("")
    s = Settings.from_env(
        {
            "REDIS_URL": "redis://127.0.0.1:7000/2",
            "PRESENCE_HOST": "0.0.0.0",
            "PRESENCE_PORT": "9000",
            "PRESENCE_SECRET": GOOD_SECRET,
            "PRESENCE_CONFIG": str(cfg),
            "PRESENCE_DATA_DIR": str(tmp_path),
            "PRESENCE_GRACE_SECONDS": "0.5",
            "PRESENCE_HEARTBEAT_TIMEOUT": "10",
            "PRESENCE_LEASE_SECONDS": "2",
            "PRESENCE_SWEEP_INTERVAL": "0.05",
            "PRESENCE_SUPERVISOR_FLUSH": "0.25",
            "PRESENCE_TOKEN_TTL": "60",
            "PRESENCE_ALLOWED_ORIGINS": "https://a.example, https://b.example",
            "PRESENCE_MAX_FRAME": "2048",
            "PRESENCE_RATE_PER_SECOND": "10",
            "PRESENCE_RATE_BURST": "20",
            "PRESENCE_LOG_LEVEL": "DEBUG",
            "PRESENCE_REDIS_MODE": "Cluster",
        }
    )
    assert (s.redis_url, s.redis_mode) == ("redis://127.0.0.1:7000/2", "cluster")
    assert (s.host, s.port, s.secret, s.center_config, s.data_dir) == (
        "0.0.0.0",
        9000,
        GOOD_SECRET,
        cfg,
        tmp_path,
    )
    assert (s.grace_seconds, s.heartbeat_timeout, s.lease_seconds) == (0.5, 10.0, 2.0)
    assert (s.sweep_interval, s.supervisor_flush, s.token_ttl, s.max_frame) == (0.05, 0.25, 60, 2048)
    assert s.allowed_origins == ("https://a.example", "https://b.example")
    assert (s.rate_per_second, s.rate_burst, s.log_level) == (10.0, 20, "debug")


def test_settings_are_frozen() -> None:
    s = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REDIS_URL", "localhost:6379"),
        ("REDIS_URL", "http://redis"),
        ("PRESENCE_HOST", "bad host name"),
        ("PRESENCE_PORT", "eighty"),
        ("PRESENCE_PORT", "70000"),
        ("PRESENCE_PORT", "-1"),
        ("PRESENCE_PORT", "80.5"),
        ("PRESENCE_SECRET", "short"),
        ("PRESENCE_CONFIG", "/nonexistent/center.toml"),
        ("PRESENCE_DATA_DIR", "/dev/null/var"),
        ("PRESENCE_GRACE_SECONDS", "soon"),
        ("PRESENCE_GRACE_SECONDS", "-1"),
        ("PRESENCE_GRACE_SECONDS", "nan"),
        ("PRESENCE_HEARTBEAT_TIMEOUT", "0"),
        ("PRESENCE_LEASE_SECONDS", "0.1"),
        ("PRESENCE_LEASE_SECONDS", "inf"),
        ("PRESENCE_SWEEP_INTERVAL", "0"),
        ("PRESENCE_SUPERVISOR_FLUSH", "x"),
        ("PRESENCE_TOKEN_TTL", "0"),
        ("PRESENCE_TOKEN_TTL", "1h"),
        ("PRESENCE_MAX_FRAME", "100"),
        ("PRESENCE_RATE_PER_SECOND", "0"),
        ("PRESENCE_RATE_BURST", "many"),
        ("PRESENCE_LOG_LEVEL", "loud"),
        ("PRESENCE_HISTORY_DAYS", "0"),
        ("PRESENCE_ROLLUP_DAYS", "forever"),
        ("PRESENCE_CLOCK_MARGIN_SECONDS", "0"),
        ("PRESENCE_CLOCK_MARGIN_SECONDS", "301"),  # past what every read of a range widens itself by
        ("PRESENCE_CLOCK_MARGIN_SECONDS", "later"),
        ("PRESENCE_RETENTION_DAYS", "-1"),
        ("PRESENCE_RETENTION_DAYS", "ninety"),
        ("PRESENCE_ARCHIVE_DIR", "/dev/null/archive"),
        ("PRESENCE_TIMEZONE", "Mars/Olympus_Mons"),
        ("PRESENCE_KPI_INTERVAL", "0"),
        ("PRESENCE_STALL_MS", "-1"),
        ("PRESENCE_STALL_MS", "soon"),
        ("PRESENCE_REDIS_MODE", "sharded"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert name in str(info.value)
    if name != "PRESENCE_SECRET":  # never echo a secret, even a bad one
        assert value in str(info.value) or "between" in str(info.value) or "file" in str(info.value)
    else:
        assert value not in str(info.value)


def test_empty_values_mean_default() -> None:
    s = Settings.from_env(
        {"PRESENCE_PORT": "", "REDIS_URL": "", "PRESENCE_SECRET": "", "PRESENCE_CONFIG": ""}
    )
    assert (s.port, s.redis_url, s.secret, s.center_config) == (8000, None, None, None)


def test_stall_watch_is_off_unless_asked() -> None:
    assert Settings.from_env({}).stall_ms == 0
    assert Settings.from_env({"PRESENCE_STALL_MS": "12.5"}).stall_ms == 12.5


def test_serve_logs_no_line_per_outgoing_request() -> None:
    """`presence serve`'s logging keeps httpx's per-request INFO lines out of
    the terminal (the demo's phone system posts a call every few seconds),
    and its own loggers at INFO (the "presence ready" line)."""
    from presence.cli import _log_config

    config = _log_config()
    assert config["loggers"]["httpx"]["level"] == "WARNING"
    assert config["loggers"]["httpcore"]["level"] == "WARNING"
    assert config["root"]["level"] == "INFO"
