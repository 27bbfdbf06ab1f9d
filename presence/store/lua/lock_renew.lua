-- lock_renew.lua: extend a leader lock's TTL only if the caller still holds
-- it (compare-and-pexpire, one atomic step). A GET then a PEXPIRE from Python
-- would extend a lock that expired and was taken by another process between
-- the two calls: the new holder's lock would live on the old holder's
-- renewals, and both would believe they lead.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] the lock's key below the prefix (kpi:lock:<name>,
-- demo:lock)  ARGV[3] holder id  ARGV[4] TTL (ms)
-- Reply: 1 renewed, 0 not ours (expired, or taken by another)
local lk = P .. ARGV[2]
if redis.call('GET', lk) == ARGV[3] then
  return redis.call('PEXPIRE', lk, ARGV[4])
end
return 0
