-- lock_release.lua: release a leader lock only if the caller still holds it
-- (compare-and-delete). A holder whose work outlived the lock's TTL must not
-- delete the lock another process has taken since.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] the lock's key below the prefix (kpi:lock:<name>,
-- demo:lock)  ARGV[3] holder id
-- Reply: 1 released, 0 not ours
local lk = P .. ARGV[2]
if redis.call('GET', lk) == ARGV[3] then
  return redis.call('DEL', lk)
end
return 0
