-- agent_delete.lua: remove an agent who holds no work and no offers.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] agent id
-- Reply: {"ok"} | {"not_found"|"conflict", "agent_id", message}
local aid = ARGV[2]
local ak = key('agent', aid)
if redis.call('SISMEMBER', key('agents'), aid) == 0 then
  return {'not_found', 'agent_id', 'no agent ' .. aid}
end
if redis.call('SCARD', ak .. ':offers') + #in_hand(aid) > 0 then
  return {'conflict', 'agent_id', 'agent ' .. aid .. ' still holds offers or work; reassign it first'}
end
local queues = redis.call('HGET', ak, 'queues')
for _, q in ipairs(queues and cmsgpack.unpack(queues) or {}) do
  redis.call('SREM', key('queue', q, 'members'), aid)
  redis.call('ZREM', key('queue', q, 'ready'), aid)
end
redis.call('SREM', key('agents'), aid)
-- remembered so that seeding from the center file does not bring it back
redis.call('SADD', key('agents', 'removed'), aid)
redis.call('ZREM', key('timer', 'graces'), aid)
redis.call('DEL', ak, ak .. ':offers', ak .. ':work')
emit({type = 'agent.removed', sup = 1, to = aid, agent_id = aid})
return {'ok'}
