"""Erlang C: waiting probability, service level, ASA and staffing. Pure.

The M/M/N queue behind every contact-center staffing calculator: calls
arrive at random (Poisson) at rate ``rate`` per second, each takes on
average ``aht`` seconds (exponential), ``agents`` serve one at a time and
callers wait without giving up. ``traffic`` A = rate x aht is the offered
load in Erlangs.

Erlang C is computed through the Erlang B recursion
``B(0) = 1, B(k) = A B(k-1) / (k + A B(k-1))`` and
``C = N B / (N - A (1 - B))``, which never forms A^N or N! and so stays
exact in floating point for thousands of agents.
"""

from __future__ import annotations

import math

# More agents than this is not a staffing answer but a configuration error.
MAX_AGENTS = 100_000


def traffic(rate: float, aht: float) -> float:
    """Offered load in Erlangs: arrivals per second times seconds per contact."""
    return rate * aht


def erlang_b(agents: int, traffic: float) -> float:
    """Blocking probability of an Erlang B (loss) system."""
    if agents < 0 or traffic < 0:
        raise ValueError("agents and traffic must not be negative")
    b = 1.0
    for k in range(1, agents + 1):
        b = traffic * b / (k + traffic * b)
    return b


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a contact has to wait (1 when the queue is unstable)."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return 1.0
    b = erlang_b(agents, traffic)
    return agents * b / (agents - traffic * (1 - b))


def service_level(agents: int, traffic: float, aht: float, threshold: float) -> float:
    """Share of contacts answered within ``threshold`` seconds."""
    if traffic <= 0:
        return 1.0
    if agents <= traffic:
        return 0.0
    c = erlang_c(agents, traffic)
    return max(0.0, 1.0 - c * math.exp(-(agents - traffic) * threshold / aht))


def asa(agents: int, traffic: float, aht: float) -> float:
    """Average speed of answer in seconds (infinite when unstable)."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return math.inf
    return erlang_c(agents, traffic) * aht / (agents - traffic)


def occupancy(agents: int, traffic: float) -> float:
    """Share of the agents' time spent handling contacts."""
    if agents <= 0:
        return 0.0
    return min(1.0, traffic / agents)


def agents_needed(rate: float, aht: float, target: float, threshold: float) -> int:
    """Fewest agents whose service level within ``threshold`` s reaches ``target``.

    ``rate`` is arrivals per second, ``aht`` seconds, ``target`` a share
    (0.8 for 80 %). No traffic needs no agents.
    """
    if not 0 <= target <= 1:
        raise ValueError("target must be a share between 0 and 1")
    if rate < 0 or aht < 0 or threshold < 0:
        raise ValueError("rate, aht and threshold must not be negative")
    a = traffic(rate, aht)
    if a <= 0:
        return 0
    n = max(1, math.floor(a) + 1)
    # A target of 100 % is reached only in the limit; 1 - 1e-9 stands in for it.
    goal = min(target, 1 - 1e-9)
    while n <= MAX_AGENTS:
        if service_level(n, a, aht, threshold) >= goal:
            return n
        n += 1
    raise ValueError(f"more than {MAX_AGENTS} agents would be needed")
