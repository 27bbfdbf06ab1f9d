"""The /metrics families built from the counters (`presence.http.metrics.families`, pure)."""

from __future__ import annotations

from presence.http.metrics import families


def test_a_queue_whose_assignments_all_took_no_time_has_its_histogram() -> None:
    # the scripts write no increment of 0: an intake routed in its own call
    # counts its bucket but leaves `latsum` unwritten
    values = {"assigned|q|chat": 2, "lat|q|0.05": 2, "lat|r|5": 1, "latsum|r": 4000}
    hist = next(
        f for f in families("c", values, {}, [], 0) if f.name == "presence_assignment_latency_seconds"
    )
    totals = {
        (s.labels["queue"], s.name.rsplit("_", 1)[1]): s.value
        for s in hist.samples
        if s.name.endswith(("_count", "_sum"))
    }
    assert totals == {("q", "count"): 2, ("q", "sum"): 0.0, ("r", "count"): 1, ("r", "sum"): 4.0}
