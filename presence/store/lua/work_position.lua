-- work_position.lua: where a queued item stands. Read only.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] work id
-- Reply: {state, queue, position (1 = next, 0 = not waiting), sum of recent
--         handle times (ms), how many, agents signed in with a routable status}
local wid = ARGV[2]
local it = hmget(key('work', wid), {'state', 'queue'})
if not it.state then return {'', '', 0, 0, 0, 0} end
local q = it.queue
local rank = redis.call('ZRANK', key('queue', q, 'waiting'), wid)
local sum, n = 0, 0
-- the 50 latest (HANDLE_KEPT, _lib_work.lua: the list is trimmed to them now and then)
for _, v in ipairs(redis.call('LRANGE', key('queue', q, 'handle'), 0, HANDLE_KEPT - 1)) do
  sum = sum + num(v)
  n = n + 1
end
local staffed = 0
for _, aid in ipairs(redis.call('SMEMBERS', key('queue', q, 'members'))) do
  local a = hmget(key('agent', aid), {'conns', 'routable'})
  if num(a.conns) > 0 and a.routable == '1' then staffed = staffed + 1 end
end
return {it.state, q, rank and (rank + 1) or 0, sum, n, staffed}
