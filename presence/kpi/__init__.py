"""Contact-center KPIs: Erlang C staffing, the pure KPI engine, the live
wallboard figures, the hourly/daily roll-up and the Prometheus counters.

The engine is pure (no I/O, explicit clocks) and carries every definition,
in layers that import only downwards: `events` (stream entries decoded),
`facts` (facts, spans and the center's settings), `aggregates` (the
additive sums and the figures derived from them), `tracker` (events folded
into facts and spans, windows summed in a full pass) and `incremental` (the
live tracker: the same figures kept up to date as events arrive); `erlang`
is pure too. `history`, `live`, `rollup` and `counters` are the thin I/O
layers that feed them from Redis. The definitions are documented in
``docs/kpis.md``.
"""
