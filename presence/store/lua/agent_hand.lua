-- agent_hand.lua: make the agents' work in hand their field `w` alone
-- (_lib_agent.lua `in_hand`): the ids of an agent's older set
-- `agent:<id>:work` move into it, and an id whose item the agent no longer
-- holds leaves it. During a rolling upgrade a server of the version before
-- adds to the set and ends an item with an SREM of it, which leaves the
-- item's id in the field when a newer server had assigned it; every start
-- runs this (Store.sync_center, page by page), so the last start of the
-- upgrade, after the last older server stopped, leaves no stale id.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2..] agent ids
-- Reply: {"ok", number of agents whose field changed}
local changed = 0
local HELD = {assigned = true, wrapup = true}
for i = 2, #ARGV do
  local aid = ARGV[i]
  local ak = key('agent', aid)
  local raw = redis.call('HGET', ak, 'w')
  local keep = {}
  for _, wid in ipairs(in_hand(aid, raw)) do
    local it = hmget(key('work', wid), {'state', 'agent'})
    if HELD[it.state or ''] and it.agent == aid then keep[#keep + 1] = wid end
  end
  local field = #keep > 0 and cmsgpack.pack(keep) or ''
  if redis.call('EXISTS', ak) == 1 and field ~= (raw or '') then
    redis.call('HSET', ak, 'w', field)
    changed = changed + 1
  end
  redis.call('DEL', key('agent', aid, 'work'))
end
return {'ok', changed}
