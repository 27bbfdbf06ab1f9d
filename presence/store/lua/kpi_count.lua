-- kpi_count.lua: add one batch of counted events to the Prometheus counters,
-- exactly once: the batch applies only if the counters' stream cursor is
-- still the one it was read after, so two processes counting the same
-- batch cannot both add it (presence/kpi/counters.py).
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] cursor the batch was read after ("" = none yet)
-- ARGV[3] id of the batch's last entry  ARGV[4..] field, increment, ...
-- Reply: {"ok"} | {"conflict", "cursor", message}
local mk = key('metrics')
local cur = redis.call('HGET', mk, 'cursor') or ''
if cur ~= ARGV[2] then
  return {'conflict', 'cursor', 'the counters moved on to ' .. cur}
end
for i = 4, #ARGV - 1, 2 do
  redis.call('HINCRBY', mk, ARGV[i], ARGV[i + 1])
end
redis.call('HSET', mk, 'cursor', ARGV[3], 'updated', NOW)
return {'ok'}
