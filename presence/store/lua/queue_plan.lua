-- queue_plan.lua: renew queues' plans of hours (when each opens and
-- closes, presence/hours.py); a queue deleted meanwhile is skipped.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2..] pairs: queue, plan (msgpack list)
-- Reply: {"ok", queues renewed}
local n = 0
for i = 2, #ARGV, 2 do
  local q = ARGV[i]
  if redis.call('ZSCORE', key('queues'), q) then
    redis.call('HSET', key('queue', q), 'plan', ARGV[i + 1])
    n = n + 1
  end
end
-- the scripts keep each queue's plan with its settings (_lib_config.lua)
if n > 0 then settings_changed() end
return {'ok', n}
