-- center_dump.lua: every key of the center with its expiry and its DUMP
-- payload, in one step: a consistent copy for `presence backup`
-- (presence/store/backup.py), taken while servers keep running. Read-only
-- (registered `no-writes`), so it runs on a full Redis too. It blocks Redis
-- while it runs (one SCAN of the keyspace plus a DUMP per key of the center).
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] the prefix as a SCAN pattern (glob characters escaped)
-- Reply: {key, expires-at ms (-1: never), payload, key, ...}
local out, seen = {}, {}
local cursor = '0'
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[2], 'COUNT', 1000)
  cursor = page[1]
  for _, k in ipairs(page[2]) do
    -- SCAN may return a key twice
    if not seen[k] then
      seen[k] = true
      local payload = redis.call('DUMP', k)
      if payload then
        out[#out + 1] = k
        out[#out + 1] = redis.call('PEXPIRETIME', k)
        out[#out + 1] = payload
      end
    end
  end
until cursor == '0'
return out
