"""Routing: who gets which work item.

`policy` is the routing rule as a pure function of a snapshot (the reference
model, tested with plain tables and used to cross-check the Lua router);
`dispatcher` decides when to route and commits decisions with one Lua
script call per batch (``store/lua/route.lua``) and runs the `Sweeper`
(timeouts, lost sockets); `escalator` runs the overflow and skill
relaxation timer (``store/lua/queue_escalate.lua``).
"""
