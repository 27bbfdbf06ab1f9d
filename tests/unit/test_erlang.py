"""Erlang C against a hand-computed case and the classic worked example.

Expected values are derived independently of the module: with exact
fractions and the textbook factorial form of Erlang C,
C(N, A) = (A^N/N! . N/(N-A)) / (sum_{k<N} A^k/k! + A^N/N! . N/(N-A)).
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from presence.kpi import erlang


def exact_c(n: int, a: Fraction) -> Fraction:
    top = a**n / math.factorial(n) * Fraction(n) / (n - a)
    return top / (sum(a**k / math.factorial(k) for k in range(n)) + top)


def test_two_agents_one_erlang_by_hand() -> None:
    # N=2, A=1: terms 1, 1, then A^2/2! . 2/(2-1) = 1  ->  C = 1/3
    assert erlang.erlang_c(2, 1.0) == pytest.approx(1 / 3, abs=1e-15)
    # ASA = C . AHT / (N - A) = 100/3 s for AHT 100 s
    assert erlang.asa(2, 1.0, 100.0) == pytest.approx(100 / 3, abs=1e-12)
    # SL(t) = 1 - C e^{-(N-A) t / AHT}; at t = AHT ln 2 the exponential is 1/2
    assert erlang.service_level(2, 1.0, 100.0, 100 * math.log(2)) == pytest.approx(1 - 1 / 6, abs=1e-12)
    assert erlang.occupancy(2, 1.0) == 0.5


def test_single_agent_is_mm1() -> None:
    # M/M/1: the probability of waiting equals the utilisation
    for rho in (0.1, 0.5, 0.9):
        assert erlang.erlang_c(1, rho) == pytest.approx(rho, abs=1e-15)


def test_classic_worked_example_ten_erlangs() -> None:
    # The widely reproduced example: 100 calls in 30 minutes, AHT 180 s,
    # target 80 % answered in 20 s -> A = 100/1800 * 180 = 10 Erlangs.
    a = erlang.traffic(100 / 1800, 180)
    assert a == pytest.approx(10.0, abs=1e-12)
    for n, c_printed, sl_printed in ((11, 0.6821, 0.3896), (12, 0.4494, 0.6402), (14, 0.1741, 0.8884)):
        c = exact_c(n, Fraction(10))
        assert round(float(c), 4) == c_printed
        assert erlang.erlang_c(n, a) == pytest.approx(float(c), rel=1e-12)
        sl = 1 - float(c) * math.exp(-(n - 10) * 20 / 180)
        assert round(sl, 4) == sl_printed
        assert erlang.service_level(n, a, 180, 20) == pytest.approx(sl, rel=1e-12)
    # 13 agents reach 79.56 %, just short of 80 %: 14 are needed
    assert erlang.service_level(13, a, 180, 20) < 0.8 < erlang.service_level(14, a, 180, 20)
    assert erlang.agents_needed(100 / 1800, 180, 0.8, 20) == 14
    assert erlang.asa(14, a, 180) == pytest.approx(float(exact_c(14, Fraction(10))) * 180 / 4, rel=1e-12)


def test_twenty_four_erlangs() -> None:
    # 360 calls an hour at 240 s AHT: 24 Erlangs. 28 agents give 76.1 %,
    # 29 give 84.0 %, so 80/20 needs 29 (not the 28 sometimes quoted).
    assert erlang.traffic(360 / 3600, 240) == pytest.approx(24.0)
    for n in (28, 29):
        c = float(exact_c(n, Fraction(24)))
        assert erlang.erlang_c(n, 24.0) == pytest.approx(c, rel=1e-12)
    assert erlang.service_level(28, 24.0, 240, 20) == pytest.approx(0.76130, abs=1e-5)
    assert erlang.service_level(29, 24.0, 240, 20) == pytest.approx(0.84028, abs=1e-5)
    assert erlang.agents_needed(0.1, 240, 0.8, 20) == 29


def test_large_center_stays_finite() -> None:
    # A^N and N! would overflow a float long before 2000 agents
    a = 1900.0
    c = erlang.erlang_c(2000, a)
    assert 0 < c < 1
    n = erlang.agents_needed(a / 300, 300, 0.9, 15)
    assert 1900 < n < 2100
    assert erlang.service_level(n, a, 300, 15) >= 0.9 > erlang.service_level(n - 1, a, 300, 15)


def test_edges() -> None:
    assert erlang.erlang_c(3, 3.0) == 1.0  # unstable: everyone waits
    assert erlang.service_level(3, 5.0, 60, 20) == 0.0
    assert erlang.asa(3, 3.0, 60) == math.inf
    assert erlang.erlang_c(3, 0.0) == 0.0
    assert erlang.agents_needed(0, 200, 0.8, 20) == 0
    assert erlang.agents_needed(0.01, 0, 0.8, 20) == 0
    with pytest.raises(ValueError):
        erlang.agents_needed(1, 100, 1.5, 20)
    with pytest.raises(ValueError):
        erlang.agents_needed(-1, 100, 0.8, 20)
    # higher targets never need fewer agents
    needs = [erlang.agents_needed(0.05, 180, t / 100, 20) for t in range(0, 100, 5)]
    assert needs == sorted(needs)
