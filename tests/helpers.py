"""Small helpers shared by the test suite (no fixtures here)."""

from __future__ import annotations

import socket

import httpx


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    # The developer's own Redis may live there; never hand it out.
    return port if port != 6379 else free_port()


_http: httpx.Client | None = None


def http() -> httpx.Client:
    """The suite's one HTTP client (keep-alive, plain http to 127.0.0.1).

    Not ``httpx.get(...)`` per call: each of those builds a client, and with
    it an SSL context loaded with the CA bundle (20-30 ms on an idle core,
    over 0.2 s on a busy 2-core box), on every readiness poll and every
    posted item. The same defaults as ``httpx.get``; the server sets no
    cookies, so none are carried from one test to the next.
    """
    global _http
    if _http is None or _http.is_closed:
        _http = httpx.Client(timeout=5.0)
    return _http


def close_http() -> None:
    if _http is not None:
        _http.close()
