-- agent_put.lua: create or update an agent's profile (admin API, config seed).
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] agent id  ARGV[3] name  ARGV[4] capacity
-- ARGV[5] extension  ARGV[6] queues (msgpack list)  ARGV[7] skills (msgpack map)
-- ARGV[8] "1" to only create (config seeding never overwrites API changes)
-- Seeding skips an agent the API deleted (agents:removed); an API put brings it back.
-- Reply: {"ok", "created"|"updated"|"exists"|"removed", woken queue...} | {"invalid"|"conflict", field, message}
local aid, name, cap, ext = ARGV[2], ARGV[3], num(ARGV[4]), ARGV[5]
local queues, skills, create_only = cmsgpack.unpack(ARGV[6]), cmsgpack.unpack(ARGV[7]), ARGV[8] == '1'
local ak = key('agent', aid)
local exists = redis.call('SISMEMBER', key('agents'), aid) == 1
if exists and create_only then return {'ok', 'exists'} end
if create_only and redis.call('SISMEMBER', key('agents', 'removed'), aid) == 1 then
  return {'ok', 'removed'}
end
for i, q in ipairs(queues) do
  if not redis.call('ZSCORE', key('queues'), q) then
    return {'invalid', 'queues[' .. (i - 1) .. ']', 'unknown queue ' .. q}
  end
end
if exists then
  local load = num(redis.call('HGET', ak, 'load'))
  if cap < load then
    return {'conflict', 'capacity', 'capacity ' .. cap .. ' is below the ' .. load .. ' units the agent holds now'}
  end
  local old = hmget(ak, {'queues', 'skills'})
  for _, q in ipairs(old.queues and cmsgpack.unpack(old.queues) or {}) do
    redis.call('SREM', key('queue', q, 'members'), aid)
    redis.call('ZREM', key('queue', q, 'ready'), aid)
  end
  for s, _ in pairs(old.skills and cmsgpack.unpack(old.skills) or {}) do
    redis.call('HDEL', ak, 'sk:' .. s)
  end
else
  redis.call('SADD', key('agents'), aid)
  redis.call('SREM', key('agents', 'removed'), aid)
  redis.call('HSET', ak, 'status', rule('offline_status', 'Offline'), 'reason', '', 'since', NOW,
             'routable', '0', 'load', 0, 'n', 0, 'conns', 0, 'missed', 0, 'idle', 0, 'ver', 0)
end
redis.call('HSET', ak, 'name', name, 'cap', cap, 'ext', ext, 'queues', ARGV[6], 'skills', ARGV[7])
for s, lvl in pairs(skills) do
  redis.call('HSET', ak, 'sk:' .. s, lvl)
end
for _, q in ipairs(queues) do
  redis.call('SADD', key('queue', q, 'members'), aid)
end
local woke = reindex(aid)
emit_agent(aid, 'load')
return {'ok', exists and 'updated' or 'created', unpack(woke)}
