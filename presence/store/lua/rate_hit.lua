-- rate_hit.lua: count one hit in a fixed window (per-IP form rate limit).
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] bucket  ARGV[3] window (s)  ARGV[4] most hits per window
-- Reply: {"ok", hits, seconds left} | {"limited", hits, seconds left}
local k = key('rate', ARGV[2])
local n = redis.call('INCR', k)
if n == 1 then redis.call('EXPIRE', k, num(ARGV[3], 60)) end
local left = redis.call('TTL', k)
if n > num(ARGV[4]) then return {'limited', n, left} end
return {'ok', n, left}
