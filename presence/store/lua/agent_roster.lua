-- agent_roster.lua: each agent's capacity and queues, what the KPI engine
-- counts occupancy and queue membership by, without the rest of its record:
-- one reply to decode instead of one HGETALL per agent. Read only.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2..] agent ids
-- Reply: msgpack list of {agent id, capacity, {queue...}}, agents with no record left out
local out = {}
for i = 2, #ARGV do
  local aid = ARGV[i]
  local a = redis.call('HMGET', key('agent', aid), 'cap', 'queues')
  if a[1] or a[2] or redis.call('EXISTS', key('agent', aid)) == 1 then
    out[#out + 1] = {aid, num(a[1]), a[2] and cmsgpack.unpack(a[2]) or {}}
  end
end
if #out == 0 then return cmsgpack.pack({}) end
return cmsgpack.pack(out)
