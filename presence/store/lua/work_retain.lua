-- work_retain.lua: give finished items that have no expiry yet the one they
-- would have had (`retain` in _lib_work.lua): the end of the retention after
-- they ended, or at once when that has passed. For items that finished
-- before the retention was set (PRESENCE_RETENTION_DAYS from 0, or an
-- upgrade from a version without it): `presence retain`.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2..] work ids
-- Reply: {"ok", items given an expiry}
local keep = retention_ms()
if keep <= 0 then return {'ok', 0} end
local n = 0
for i = 2, #ARGV do
  local wid = ARGV[i]
  local wk = key('work', wid)
  local it = hmget(wk, {'state', 'ended_at'})
  if (it.state == 'completed' or it.state == 'abandoned') and redis.call('PTTL', wk) == -1 then
    retain(wid, math.max(1, num(it.ended_at, NOW) + keep - NOW))
    n = n + 1
  end
end
return {'ok', n}
