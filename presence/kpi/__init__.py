"""Contact-center KPIs: Erlang C staffing, the pure KPI engine, the live
wallboard figures, the hourly/daily roll-up and the Prometheus counters.

`erlang` and `engine` are pure (no I/O, explicit clocks) and carry every
definition; `live`, `rollup` and `counters` are the thin I/O layers that
feed them from Redis. The definitions are documented in ``docs/kpis.md``.
"""
