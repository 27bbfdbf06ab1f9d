-- queue_put.lua: create or update a queue's settings.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] queue name  ARGV[3] priority
-- ARGV[4] settings (msgpack map of field -> value, strings or numbers)
-- ARGV[5] "1" to only create
-- Seeding skips a queue the API deleted (queues:removed); an API put brings it back.
-- Reply: {"ok", "created"|"updated"|"exists"|"removed"}
local q, prio, create_only = ARGV[2], num(ARGV[3]), ARGV[5] == '1'
local exists = redis.call('ZSCORE', key('queues'), q) ~= false
if exists and create_only then return {'ok', 'exists'} end
if create_only and redis.call('SISMEMBER', key('queues', 'removed'), q) == 1 then
  return {'ok', 'removed'}
end
settings_changed()
redis.call('SREM', key('queues', 'removed'), q)
local qk = key('queue', q)
local old = redis.call('HGET', qk, 'strategy')
redis.call('DEL', qk)
local args = {}
for f, v in pairs(cmsgpack.unpack(ARGV[4])) do
  args[#args + 1] = f
  if v == true then v = '1' elseif v == false then v = '0' end
  args[#args + 1] = v
end
redis.call('HSET', qk, 'priority', prio, unpack(args))
redis.call('ZADD', key('queues'), prio, q)
if old ~= redis.call('HGET', qk, 'strategy') then
  -- a new strategy orders the ready index differently: rebuild it
  redis.call('DEL', key('queue', q, 'ready'))
  for _, aid in ipairs(redis.call('SMEMBERS', key('queue', q, 'members'))) do
    reindex(aid)
  end
end
emit({type = 'queue.updated', sup = 1, queue = q})
return {'ok', exists and 'updated' or 'created'}
