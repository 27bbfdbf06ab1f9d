"""Small helpers shared by the test suite (no fixtures here)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    # The developer's own Redis may live there; never hand it out.
    return port if port != 6379 else free_port()
