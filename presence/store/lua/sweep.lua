-- sweep.lua: everything that happens because time passed, in one call:
-- offers that timed out, wrap-ups past their limit, socket leases of a dead
-- process, grace periods that ran out, and the streams' length caps. Any process may run it; Lua's
-- atomicity makes each expiry happen once.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] grace (ms)  ARGV[3] most entries per kind
-- Reply: {woken queue...}
local grace, limit = num(ARGV[2]), num(ARGV[3], 500)
local woke = {}
local function wake(list)
  for _, q in ipairs(list) do woke[#woke + 1] = q end
end

local missed_limit = num(rule('missed_offers_limit', '3'))
for _, wid in ipairs(redis.call('ZRANGEBYSCORE', key('timer', 'offers'), '-inf', NOW, 'LIMIT', 0, limit)) do
  local aid = redis.call('HGET', key('work', wid), 'agent')
  local q = requeue(wid, 'timeout', false)
  if q then
    woke[#woke + 1] = q
    -- the item rings elsewhere next; this agent stays its last resort
    -- (route.lua), so a one-agent queue is never stranded
    redis.call('HSET', key('work', wid), 'missed_by', aid)
    local missed = redis.call('HINCRBY', key('agent', aid), 'missed', 1)
    if missed_limit > 0 and missed >= missed_limit then
      local st = rule('missed_offers_status', 'Away')
      redis.call('HSET', key('agent', aid), 'missed', 0)
      wake(set_status(aid, st, rule('missed_offers_reason', 'missed offers'), false, 'system'))
    end
  else
    redis.call('ZREM', key('timer', 'offers'), wid)
  end
end

for _, wid in ipairs(redis.call('ZRANGEBYSCORE', key('timer', 'wrapups'), '-inf', NOW, 'LIMIT', 0, limit)) do
  if redis.call('HGET', key('work', wid), 'state') == 'wrapup' then
    wake(complete(wid, 'wrapup-timeout', 'system'))
  else
    redis.call('ZREM', key('timer', 'wrapups'), wid)
  end
end

for _, member in ipairs(redis.call('ZRANGEBYSCORE', key('timer', 'leases'), '-inf', NOW, 'LIMIT', 0, limit)) do
  redis.call('ZREM', key('timer', 'leases'), member)
  local aid = string.match(member, '^(.*)|[^|]*$')
  if redis.call('EXISTS', key('agent', aid)) == 1 then
    -- the lease ran out long after the socket died: grace counts from now
    drop_conn(aid, grace)
  end
end

local offline = rule('offline_status', 'Offline')
for _, aid in ipairs(redis.call('ZRANGEBYSCORE', key('timer', 'graces'), '-inf', NOW, 'LIMIT', 0, limit)) do
  redis.call('ZREM', key('timer', 'graces'), aid)
  local ak = key('agent', aid)
  if redis.call('EXISTS', ak) == 1 and num(redis.call('HGET', ak, 'conns')) <= 0 then
    wake(set_status(aid, offline, 'disconnected', false, 'system'))
  end
end

-- the history streams' and the webhooks' last guards (LOG_MAX, HOOK_MAX):
-- approximate, so a stream under its cap costs a length check
redis.call('XTRIM', key('stream', 'events'), 'MAXLEN', '~', LOG_MAX)
redis.call('XTRIM', key('stream', 'status'), 'MAXLEN', '~', LOG_MAX)
for name in pairs(load_hooks()) do
  redis.call('XTRIM', key('webhook', name), 'MAXLEN', '~', HOOK_MAX)
end
return woke
