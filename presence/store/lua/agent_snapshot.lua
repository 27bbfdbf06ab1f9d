-- agent_snapshot.lua: what an agent's snapshot needs from Redis, in one
-- consistent read (snapshot.get, and the resync after a lost event). Read only.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] agent id
-- Reply: {"ok", packed view ('' when the agent has no record), {item hash...}}
local packed, items = agent_snapshot(ARGV[2])
return {'ok', packed, items}
