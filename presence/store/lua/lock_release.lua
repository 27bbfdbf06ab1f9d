-- lock_release.lua: release a per-center task lock (kpi:lock:<name>) only if
-- the caller still holds it. A holder whose work outlived the lock's TTL
-- must not delete the lock another process has taken since.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] lock name  ARGV[3] holder id
-- Reply: 1 released, 0 not ours
local lk = key('kpi', 'lock', ARGV[2])
if redis.call('GET', lk) == ARGV[3] then
  return redis.call('DEL', lk)
end
return 0
